"""docs/traffic.md against the schemas, the support table, the analyzer and the translator.

The page must list every message and field of the traffic schemas with the status the
table gives it; every ignored field is reported when set (fixture IGNORED sets each one);
every supported field is set somewhere in fixture SUPPORTED, and translating that fixture
for every proxy gives no RAT0001 finding on a field the page calls supported.

To see which rows are missing after a schema change: `python -m tests.api.test_traffic_support`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ratline.api.analyze import analyze
from ratline.api.loader import load_text
from ratline.api.traffic_support import (
    NOT_SUPPORTED,
    ROOTS,
    SUPPORT,
    Status,
    field_alias,
    field_at,
    fields_of,
    message_name,
    messages_of,
    models_in,
    support_of,
)
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from tests.translate import mesh

PAGE = Path(__file__).resolve().parents[2] / "docs" / "traffic.md"
ROW = re.compile(r"^\| `([^`]+)` \| ([^|]+) \|(.*)\|\s*$")

SUPPORTED = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  exportTo: ["*"]
  http:
  - name: jason
    match:
    - name: m
      uri: {prefix: /reviews}
      scheme: {exact: http}
      method: {exact: GET}
      authority: {regex: "reviews.*"}
      headers: {end-user: {exact: jason}, x-present: {}}
      withoutHeaders: {x-debug: {prefix: "1"}}
      queryParams: {u: {exact: "1"}}
      ignoreUriCase: true
      port: 9080
      sourceLabels: {app: productpage}
      sourceNamespace: default
      statPrefix: jason
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 90
      headers:
        request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
        response: {set: {x-d: "1"}}
    - destination: {host: reviews, subset: v3}
      weight: 10
    rewrite: {uri: /r, authority: reviews-internal}
    timeout: 2s
    retries:
      attempts: 3
      perTryTimeout: 1s
      retryOn: "5xx,503"
      retryRemoteLocalities: true
      retryIgnorePreviousHosts: false
      backoff: 25ms
    fault:
      delay: {fixedDelay: 1s, percentage: {value: 10}}
      abort: {httpStatus: 503, percentage: {value: 5}}
    mirror: {host: reviews, subset: v1}
    mirrorPercentage: {value: 50}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {prefix: "https://b."}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a]
      exposeHeaders: [x-b]
      maxAge: 24h
      allowCredentials: true
      unmatchedPreflights: IGNORE
  - match:
    - uri: {exact: /legacy}
      gateways: [mesh]
    headers:
      request: {set: {":authority": reviews-internal-2}}
    route:
    - destination: {host: reviews}
    mirror: {host: reviews, subset: v1}
    mirrorPercent: 20
    rewrite: {uriRegexRewrite: {match: "^/legacy(.*)$", rewrite: '/new\\1'}}
    corsPolicy: {allowOrigin: ["https://c.example"]}
    fault:
      delay: {fixedDelay: 1s, percent: 5}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}
  - match:
    - uri: {regex: "^/moved/.*"}
    redirect: {uri: /new, authority: other, port: 8080, scheme: https, redirectCode: 308}
  - match:
    - uri: {prefix: /old}
    redirect: {prefixRewrite: /new, derivePort: FROM_REQUEST_PORT}
  - match:
    - uri: {prefix: /teapot}
    directResponse: {status: 418, body: {string: teapot}}
  - match:
    - uri: {prefix: /bytes}
    directResponse: {status: 200, body: {bytes: aGVsbG8=}}
  - match:
    - uri: {prefix: /api}
    delegate: {name: reviews-api, namespace: default}
  - mirrors:
    - destination: {host: reviews, subset: v3}
      percentage: {value: 5}
    route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api}
spec:
  http:
  - match:
    - uri: {prefix: /api/v1}
    route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  exportTo: ["*"]
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, path: /, ttl: 60s, attributes: [{name: SameSite, value: Lax}]}
        ringHash: {minimumRingSize: 512}
      localityLbSetting:
        failover: [{from: us-east, to: us-west}]
        failoverPriority: [version]
        enabled: true
      warmupDurationSecs: 10s
    connectionPool:
      tcp:
        maxConnections: 10
        connectTimeout: 2s
        tcpKeepalive: {probes: 3, time: 60s, interval: 10s}
        maxConnectionDuration: 1h
        idleTimeout: 30m
      http:
        http1MaxPendingRequests: 5
        http2MaxRequests: 50
        maxRequestsPerConnection: 100
        maxRetries: 4
        idleTimeout: 10m
        h2UpgradePolicy: UPGRADE
        useClientProtocol: false
        maxConcurrentStreams: 100
        http2KeepAlive: {interval: 30s, timeout: 5s}
    outlierDetection:
      splitExternalLocalOriginErrors: true
      consecutiveLocalOriginFailures: 3
      consecutiveGatewayErrors: 2
      consecutive5xxErrors: 5
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
      minHealthPercent: 10
      outlierDetectionHttpErrorCodes: [500, 503]
    retryBudget: {percent: 25, minRetryConcurrency: 2}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: ROUND_ROBIN, warmup: {duration: 5s, minimumPercent: 20, aggression: 2}}
      connectionPool: {http: {h2UpgradePolicy: DEFAULT}}
      outlierDetection: {consecutiveErrors: 3}
      tls: {mode: ISTIO_MUTUAL, sni: reviews, subjectAltNames: ["spiffe://x"]}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 65537}}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true, minimumRingSize: 64}
        localityLbSetting:
          distribute: [{from: "us-east/*", to: {"us-east/*": 80, "us-west/*": 20}}]
      tls: {mode: MUTUAL, credentialName: reviews-credential, sni: reviews.example}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer:
        consistentHash: {httpQueryParameterName: u}
      connectionPool: {http: {useClientProtocol: true}}
      tls:
        mode: MUTUAL
        clientCertificate: /c.pem
        privateKey: /k.pem
        caCertificates: /ca.pem
        insecureSkipVerify: false
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/reviews.example"]
    name: web
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*/reviews.example"]
    tls:
      mode: MUTUAL
      serverCertificate: /cert.pem
      privateKey: /key.pem
      caCertificates: /ca.pem
      subjectAltNames: [client.example.com]
      verifyCertificateSpki: [LjMm5DUzqpkNvZ7T6IbcL8P9eZWEVCRN8TcvxJAvdC8=]
      verifyCertificateHash: [5de2d3aa0ec2e22e3b5e7d1e1c1bfc3bd6e4e6bba4ba3bf1d0be7e3f0c3d2e1a]
      minProtocolVersion: TLSV1_2
      maxProtocolVersion: TLSV1_3
      cipherSuites: [ECDHE-RSA-AES256-GCM-SHA384]
  - port: {number: 8443, name: https-cred, protocol: HTTPS}
    hosts: ["*/reviews.example"]
    tls: {mode: SIMPLE, credentialName: reviews-credential}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-edge}
spec:
  hosts: [reviews.example]
  gateways: [istio-system/gw]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: l4, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: tcp, targetPort: 31400}
    hosts: ["*"]
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: PASSTHROUGH}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: l4}
spec:
  hosts: ["*.example.com", reviews]
  gateways: [istio-system/l4, mesh]
  tcp:
  - match:
    - port: 31400
      sourceSubnet: 10.0.0.0/8
      destinationSubnets: [127.0.0.0/8]
      sourceLabels: {istio: ingressgateway}
      sourceNamespace: istio-system
      gateways: [istio-system/l4]
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 80
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
      weight: 20
  tls:
  - match:
    - sniHosts: [a.example.com]
      port: 15443
      destinationSubnets: [127.0.0.1]
      sourceLabels: {istio: ingressgateway}
      sourceNamespace: istio-system
      gateways: [istio-system/l4]
    route:
    - destination: {host: reviews, port: {number: 9080}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external-api}
spec:
  hosts: [api.external.test]
  addresses: [240.0.0.9]
  ports: [{number: 443, name: https, protocol: HTTPS, targetPort: 8443}]
  location: MESH_INTERNAL
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {https: 9443}
    labels: {app: api}
    locality: r1/z1
    weight: 2
    serviceAccount: api
  exportTo: ["*"]
  subjectAltNames: [spiffe://cluster.local/ns/default/sa/api]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: selected}
spec:
  hosts: [selected.external.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  workloadSelector: {labels: {app: api}}
"""

IGNORED = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  workloadSelector: {matchLabels: {app: productpage}}
  trafficPolicy:
    tunnel: {protocol: CONNECT, targetHost: proxy.example, targetPort: 8443}
    proxyProtocol: {version: V2}
    retryBudget: {budgetInterval: 1s}
    loadBalancer:
      zoneAwareLbSetting: {enabled: true, minClusterSize: 3, failover: [{from: a, to: b}],
                           failoverPriority: [x]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    bind: 127.0.0.2
    defaultEndpoint: 127.0.0.1:8080
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls:
      mode: MUTUAL
      serverCertificate: /cert.pem
      privateKey: /key.pem
      caCertificates: /ca.pem
      caCrl: /crl.pem
      credentialNames: [cert, cert-ecdsa]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: other-network}
spec:
  hosts: [vm.external.test]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 10.0.0.1, network: network2}]
"""

REFUSED = {
    ("FaultDelay", "exponentialDelay"): "fault: {delay: {exponentialDelay: 1s}}",
    ("FaultAbort", "http2Error"): "fault: {abort: {http2Error: CANCEL}}",
}


def _page() -> dict[str, dict[str, tuple[str, str]]]:
    """Message → field → (status, notes), from the page's `### Message` tables."""
    sections: dict[str, dict[str, tuple[str, str]]] = {}
    current: dict[str, tuple[str, str]] | None = None
    for line in PAGE.read_text().splitlines():
        if line.startswith("### "):
            name = line[4:].strip()
            assert name not in sections, f"section {name} twice"
            current = sections[name] = {}
        elif line.startswith("## "):
            current = None
        elif current is not None and (row := ROW.match(line)):
            field, status, notes = row.groups()
            assert field not in current, f"{field} twice"
            current[field] = (status.strip(), notes.strip())
    return sections


def _schema() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for root in ROOTS.values():
        for name, model in messages_of(root).items():
            found.setdefault(name, fields_of(model))
    return found


def missing_rows() -> list[str]:
    page, schema = _page(), _schema()
    return [
        f"{message}.{field}: {support_of(message, field).status.value}"
        for message, fields in schema.items()
        for field in fields
        if field not in page.get(message, {})
    ]


def test_page_lists_every_message_and_field_of_the_schemas() -> None:
    page, schema = _page(), _schema()
    assert missing_rows() == []
    extra = [f"{m}.{f}" for m, fields in page.items() for f in fields if f not in schema.get(m, [])]
    assert extra == [], "rows for fields the schemas do not have"


def test_page_statuses_and_messages_are_the_tables() -> None:
    for message, fields in _page().items():
        for field, (status, notes) in fields.items():
            support = support_of(message, field)
            assert status == support.status.value, f"{message}.{field}"
            if support.status in (Status.IGNORED, Status.REFUSED):
                assert f'"{support.message}"' in notes, f"{message}.{field} must show its message"


def test_support_table_names_only_schema_fields() -> None:
    schema = _schema()
    for message, fields in SUPPORT.items():
        assert message in schema, message
        for field in fields:
            assert field in schema[message], f"{message}.{field}"


def _set_fields(resources: list[Any]) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(value: Any) -> None:
        if isinstance(value, BaseModel):
            model = type(value)
            for name in value.model_fields_set:
                child = getattr(value, name)
                if child is None:
                    continue
                found.add((message_name(model), field_alias(model, name)))
                walk(child)
        elif isinstance(value, tuple):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for resource in resources:
        walk(resource.spec)
    return found


def _reportable_ignored() -> set[tuple[str, str]]:
    """Ignored fields the analyzer reports: in messages reached through non-ignored fields."""
    wanted: set[tuple[str, str]] = set()
    pending: list[type[BaseModel]] = list(ROOTS.values())
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for attr, info in model.model_fields.items():
            field = field_alias(model, attr)
            support = support_of(message_name(model), field)
            if support.status is Status.IGNORED and not support.by_translation:
                wanted.add((message_name(model), field))
            elif support.status in (Status.SUPPORTED, Status.REFUSED):
                pending.extend(child for child, _ in models_in(info.annotation))
    return wanted


def test_every_ignored_field_is_reported_with_its_message() -> None:
    loaded = load_text(IGNORED, "ignored.yaml")
    assert loaded.messages == []
    findings = [m for m in analyze(loaded.resources) if m.code == NOT_SUPPORTED]
    reported = set()
    for finding in findings:
        assert finding.resource is not None and finding.field is not None
        where = field_at(finding.resource.kind, finding.field)
        assert where is not None, finding.field
        assert finding.message == support_of(*where).message
        reported.add(where)
    assert reported == _reportable_ignored()


def test_refused_fields_are_refused_with_their_message() -> None:
    assert {k for k, v in SUPPORT.items() for f, s in v.items() if s.status is Status.REFUSED} == {
        m for m, _ in REFUSED
    }
    for (message, field), rule in REFUSED.items():
        text = (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n"
            f"spec:\n  hosts: [r]\n  http:\n  - {rule}\n    route: [{{destination: {{host: r}}}}]\n"
        )
        errors = [str(m) for m in load_text(text, "refused.yaml").messages]
        assert any(support_of(message, field).message in e for e in errors), errors


def test_every_supported_field_is_in_the_fixture_and_translates_without_a_finding() -> None:
    loaded = load_text(SUPPORTED, "supported.yaml")
    assert [str(m) for m in loaded.messages] == []
    assert [m for m in analyze(loaded.resources) if m.code == NOT_SUPPORTED] == []
    covered = _set_fields(loaded.resources)
    supported = {
        (message, field)
        for message, fields in _schema().items()
        for field in fields
        if support_of(message, field).status is Status.SUPPORTED
    }
    assert sorted(supported - covered) == []
    generator = MeshGenerator(mesh.snapshot(SUPPORTED), Settings(), mtls=True)
    for instance in mesh.instances():
        assert generator.protos_for(instance.node_id) is not None
    flagged = [
        (m.field, m.message)
        for m in generator.messages
        if m.code == NOT_SUPPORTED
        and m.resource is not None
        and support_of(*(field_at(m.resource.kind, m.field or "") or ("", ""))).status
        is Status.SUPPORTED
    ]
    assert flagged == []


if __name__ == "__main__":
    print("\n".join(missing_rows()) or "docs/traffic.md lists every field")
