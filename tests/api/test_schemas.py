"""The spec models accept Istio's documented fields under their YAML names."""

from __future__ import annotations

import pytest

from ratline.api import load_text
from ratline.api.schemas.common import format_duration, parse_duration
from ratline.api.schemas.core import ServiceSpec
from ratline.api.schemas.networking import (
    DestinationRuleSpec,
    GatewaySpec,
    ServiceEntrySpec,
    SidecarSpec,
    VirtualServiceSpec,
    WorkloadEntrySpec,
)
from ratline.api.schemas.security import (
    AuthorizationPolicySpec,
    PeerAuthenticationSpec,
    RequestAuthenticationSpec,
)
from ratline.api.schemas.workload import WorkloadSpec


def load_one(text: str) -> object:
    result = load_text(text, "s.yaml")
    assert result.messages == [], [str(m) for m in result.messages]
    (resource,) = result.resources
    return resource.spec


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("0.5s", 0.5),
        ("100ms", 0.1),
        ("1m", 60.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("250us", 0.00025),
        ("0s", 0.0),
        (".5s", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "1", "1x", "s", "-1s", "1 s", 5, None, True])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


FULL_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  gateways: [mesh, istio-system/ingress]
  exportTo: ["."]
  http:
  - name: jason
    match:
    - name: m
      uri: {prefix: /api}
      scheme: {exact: http}
      method: {exact: GET}
      authority: {regex: "rev.*"}
      headers: {end-user: {exact: jason}, x-present: {}}
      queryParams: {debug: {exact: "1"}}
      withoutHeaders: {x-skip: {exact: "yes"}}
      port: 9080
      sourceLabels: {app: productpage}
      gateways: [mesh]
      sourceNamespace: shop
      ignoreUriCase: true
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 100
      headers:
        request: {set: {x-a: b}, add: {x-c: d}, remove: [x-e]}
        response: {set: {x-f: g}}
    rewrite: {uri: /v2, authority: reviews-v2}
    timeout: 1.5s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,connect-failure"}
    fault:
      delay: {fixedDelay: 7s, percentage: {value: 12.5}}
      abort: {httpStatus: 503, percentage: {value: 1}}
    mirror: {host: reviews, subset: v3}
    mirrorPercentage: {value: 50}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}]
      allowMethods: [GET]
      allowHeaders: [x-a]
      exposeHeaders: [x-b]
      maxAge: 24h
      allowCredentials: true
    headers: {response: {remove: [server]}}
  - name: old
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: example.com, redirectCode: 308, derivePort: FROM_REQUEST_PORT}
  - name: teapot
    match: [{uri: {exact: /tea}}]
    directResponse: {status: 418, body: {string: "I'm a teapot"}}
  - name: delegated
    match: [{uri: {prefix: /d}}]
    delegate: {name: other, namespace: shop}
  - mirrors:
    - destination: {host: reviews, subset: v1}
      percentage: {value: 5}
    route: [{destination: {host: reviews}}]
  tcp:
  - match: [{port: 3306, sourceSubnet: 10.0.0.0/8, destinationSubnets: [10.1.0.0/16]}]
    route: [{destination: {host: mysql, port: {number: 3306}}, weight: 100}]
  tls:
  - match: [{sniHosts: [secure.example.com], port: 443}]
    route: [{destination: {host: secure.example.com}}]
"""


def test_full_virtual_service() -> None:
    spec = load_one(FULL_VS)
    assert isinstance(spec, VirtualServiceSpec)
    jason = spec.http[0]
    match = jason.match[0]
    assert match.uri is not None and match.uri.prefix == "/api"
    assert match.headers["end-user"].exact == "jason"
    assert match.headers["x-present"].exact is None
    assert match.query_params["debug"].exact == "1"
    assert match.without_headers["x-skip"].exact == "yes"
    assert match.ignore_uri_case and match.port == 9080 and match.source_namespace == "shop"
    dest = jason.route[0]
    assert dest.destination.port is not None and dest.destination.port.number == 9080
    assert dest.headers is not None and dest.headers.request is not None
    assert dest.headers.request.remove == ("x-e",)
    assert jason.timeout == 1.5
    assert jason.retries is not None and jason.retries.per_try_timeout == pytest.approx(0.5)
    assert jason.fault is not None and jason.fault.delay is not None
    assert jason.fault.delay.fixed_delay == 7.0
    assert jason.fault.delay.percentage is not None
    assert jason.fault.delay.percentage.value == 12.5
    assert jason.cors_policy is not None and jason.cors_policy.max_age == 86400.0
    assert jason.mirror_percentage is not None and jason.mirror_percentage.value == 50.0
    assert spec.http[1].redirect is not None and spec.http[1].redirect.redirect_code == 308
    assert spec.http[2].direct_response is not None
    assert spec.http[2].direct_response.status == 418
    assert spec.http[3].delegate is not None and spec.http[3].delegate.name == "other"
    assert spec.http[4].mirrors[0].destination.subset == "v1"
    assert spec.tcp[0].match[0].source_subnet == "10.0.0.0/8"
    assert spec.tls[0].match[0].sni_hosts == ("secure.example.com",)
    assert spec.export_to == (".",)


def test_specs_are_immutable() -> None:
    spec = load_one(FULL_VS)
    assert isinstance(spec, VirtualServiceSpec)
    with pytest.raises(ValueError):
        spec.hosts = ("x",)  # type: ignore[misc]
    assert spec.model_dump(by_alias=True, exclude_none=True)["http"][0]["timeout"] == "1.5s"


def test_full_destination_rule() -> None:
    spec = load_one("""\
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  exportTo: ["*"]
  workloadSelector: {matchLabels: {app: productpage}}
  trafficPolicy:
    loadBalancer:
      simple: LEAST_REQUEST
      localityLbSetting:
        enabled: true
        distribute: [{from: us-west/zone1/*, to: {"us-west/zone1/*": 80, "us-west/zone2/*": 20}}]
      warmupDurationSecs: 10s
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {time: 7200s, interval: 75s}}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 1,
             maxRetries: 3, idleTimeout: 1h, h2UpgradePolicy: UPGRADE}
    outlierDetection: {consecutive5xxErrors: 7, consecutiveGatewayErrors: 3, interval: 5m,
                       baseEjectionTime: 15m, maxEjectionPercent: 100, minHealthPercent: 0}
    tls: {mode: ISTIO_MUTUAL, sni: reviews}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer:
        consistentHash: {httpCookie: {name: user, ttl: 0s}, ringHash: {minimumRingSize: 1024}}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
""")
    assert isinstance(spec, DestinationRuleSpec)
    policy = spec.traffic_policy
    assert policy is not None and policy.load_balancer is not None
    assert policy.load_balancer.simple == "LEAST_REQUEST"
    locality = policy.load_balancer.locality_lb_setting
    assert locality is not None and locality.distribute[0].from_ == "us-west/zone1/*"
    assert policy.connection_pool is not None and policy.connection_pool.tcp is not None
    assert policy.connection_pool.tcp.connect_timeout == pytest.approx(0.03)
    assert policy.outlier_detection is not None
    assert policy.outlier_detection.consecutive_5xx_errors == 7
    assert policy.outlier_detection.base_ejection_time == 900.0
    assert policy.tls is not None and policy.tls.mode == "ISTIO_MUTUAL"
    hashing = policy.port_level_settings[0].load_balancer
    assert hashing is not None and hashing.consistent_hash is not None
    assert hashing.consistent_hash.http_cookie is not None
    assert [s.name for s in spec.subsets] == ["v1", "v2"]
    assert spec.subsets[0].labels == {"version": "v1"}


def test_gateway_service_entry_workload_entry_sidecar() -> None:
    gateway = load_one("""\
apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["shop/*.example.com"]
    tls: {mode: SIMPLE, credentialName: cert, minProtocolVersion: TLSV1_2}
    name: https
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
    bind: 0.0.0.0
""")
    assert isinstance(gateway, GatewaySpec)
    assert gateway.servers[0].port.protocol == "HTTPS"
    assert gateway.servers[1].tls is not None and gateway.servers[1].tls.https_redirect

    entry = load_one("""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [api.example.com]
  addresses: [192.0.2.1/32]
  ports: [{number: 443, name: https, protocol: TLS, targetPort: 8443}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints:
  - {address: 192.0.2.10, ports: {https: 8443}, labels: {v: a}, weight: 2, locality: us/z1,
     network: n1, serviceAccount: ext}
  exportTo: ["*"]
  subjectAltNames: ["spiffe://example.com/api"]
""")
    assert isinstance(entry, ServiceEntrySpec)
    assert entry.resolution == "STATIC" and entry.endpoints[0].ports == {"https": 8443}

    workload_entry = load_one("""\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm1}
spec: {address: 10.0.0.5, ports: {http: 8080}, labels: {app: vm}, serviceAccount: vm,
       network: n, locality: r/z, weight: 1}
""")
    assert isinstance(workload_entry, WorkloadEntrySpec) and workload_entry.labels == {"app": "vm"}

    sidecar = load_one("""\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  workloadSelector: {labels: {app: reviews}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
  egress:
  - hosts: ["./*", "istio-system/*"]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
""")
    assert isinstance(sidecar, SidecarSpec) and sidecar.egress[0].hosts == ("./*", "istio-system/*")


def test_security_kinds() -> None:
    peer = load_one("""\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
  portLevelMtls: {8080: {mode: DISABLE}}
""")
    assert isinstance(peer, PeerAuthenticationSpec) and peer.port_level_mtls[8080].mode == "DISABLE"
    authz = load_one("""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-get}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/bookinfo-productpage"],
               notNamespaces: [evil]}
    to:
    - operation: {methods: [GET], paths: ["/reviews/*"], ports: ["9080"]}
    when:
    - key: request.headers[x-token]
      values: [secret]
""")
    assert isinstance(authz, AuthorizationPolicySpec)
    assert authz.rules[0].from_[0].source.principals[0].endswith("bookinfo-productpage")
    request_authn = load_one("""\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: https://issuer.example.com
    jwksUri: https://issuer.example.com/jwks
    audiences: [shop]
    fromHeaders: [{name: Authorization, prefix: "Bearer "}]
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
    forwardOriginalToken: true
""")
    assert isinstance(request_authn, RequestAuthenticationSpec)
    assert request_authn.jwt_rules[0].from_headers[0].prefix == "Bearer "


def test_service_and_workload() -> None:
    service = load_one("""\
apiVersion: v1
kind: Service
metadata: {name: reviews, labels: {app: reviews}}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.10
  ports:
  - {name: http, port: 9080, targetPort: http-web, appProtocol: http}
  - {name: grpc, port: 9090, targetPort: 9091, protocol: TCP}
  selector: {app: reviews}
""")
    assert isinstance(service, ServiceSpec)
    assert [p.target_port for p in service.ports] == ["http-web", 9091]
    assert service.ports[0].app_protocol == "http" and service.cluster_ip == "10.96.0.10"

    workload = load_one("""\
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec:
  command: [python3, apps/reviews.py]
  env: {STARS: "0"}
  ports: [{name: http, containerPort: 9080}]
  workingDir: apps
""")
    assert isinstance(workload, WorkloadSpec)
    assert workload.service_account == "default" and workload.replicas == 1
    assert workload.ports[0].container_port == 9080 and workload.ports[0].protocol == "TCP"
    assert workload.env == {"STARS": "0"} and workload.working_dir == "apps"


def test_yaml_names_are_istio_camel_case() -> None:
    import inspect

    from pydantic import BaseModel

    from ratline.api.schemas import core, meshconfig, networking, security, workload

    aliases: dict[str, str] = {}
    for module in (core, meshconfig, networking, security, workload):
        for model in vars(module).values():
            if inspect.isclass(model) and issubclass(model, BaseModel):
                for name, info in model.model_fields.items():
                    aliases[name] = info.alias or name
    assert aliases["consecutive_5xx_errors"] == "consecutive5xxErrors"
    assert aliases["enable_64bit_trace_id"] == "enable64bitTraceId"
    assert aliases["http1_max_pending_requests"] == "http1MaxPendingRequests"
    assert aliases["from_"] == "from"
    assert aliases["cluster_ip"] == "clusterIP"
    assert aliases["http2_error"] == "http2Error"
    assert [v for v in aliases.values() if "_" in v or not v[0].islower()] == []
