"""A bookinfo-like mesh for translation tests: services, instances and Istio config."""

from __future__ import annotations

from typing import Any

from ratline.api.loader import load_text
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.model.snapshot import Endpoint, MeshSnapshot, Resolution, Service, ServicePort
from ratline.registry.instances import InstancePort, ProxyKind, SidecarPorts, WorkloadInstance

CONFIG = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    portLevelSettings:
    - port: {number: 9080}
      connectionPool: {tcp: {connectTimeout: 3s, maxConnections: 7}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - name: v2
    labels: {version: v2}
    trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews, subset: v3}
      weight: 20
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match:
    - uri: {prefix: /ratings}
      method: {exact: GET}
    timeout: 2s
    retries: {attempts: 3, retryOn: "5xx,409", perTryTimeout: 500ms}
    rewrite: {uri: /v1/ratings, authority: ratings-backend}
    headers:
      request:
        set: {x-ratline: "yes"}
        remove: [x-debug]
    route:
    - destination: {host: ratings, subset: v1}
  - match:
    - uri: {exact: /old}
    redirect: {uri: /new, redirectCode: 308}
  - match:
    - uri: {regex: "^/teapot/.*"}
    directResponse: {status: 418, body: {string: teapot}}
  - fault: {abort: {httpStatus: 500, percentage: {value: 10}}}
    route:
    - destination: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 9443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE, credentialName: cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ["*"]
  gateways: [istio-system/bookinfo-gateway]
  http:
  - match:
    - uri: {exact: /productpage}
    - uri: {prefix: /static}
    route:
    - destination: {host: productpage, port: {number: 9080}}
"""

WORKLOADS = {
    # name: (namespace, app, version)
    "productpage-v1": ("default", "productpage", "v1"),
    "details-v1": ("default", "details", "v1"),
    "reviews-v1": ("default", "reviews", "v1"),
    "reviews-v2": ("default", "reviews", "v2"),
    "reviews-v3": ("default", "reviews", "v3"),
    "ratings-v1": ("default", "ratings", "v1"),
    "echo-v1": ("other", "echo", "v1"),
}

APP_PORT_BASE = 20000
INBOUND_PORT_BASE = 21000
OUTBOUND_PORT_BASE = 22000
ADMIN_PORT_BASE = 23000


def instances() -> list[WorkloadInstance]:
    result = []
    for index, (name, (namespace, app, version)) in enumerate(sorted(WORKLOADS.items())):
        container_port = 80 if app == "echo" else 9080
        result.append(
            WorkloadInstance(
                name=f"{name}-0",
                namespace=namespace,
                workload=name,
                labels={"app": app, "version": version},
                ports=(
                    InstancePort(
                        container_port=container_port,
                        app_port=APP_PORT_BASE + index,
                        inbound_port=INBOUND_PORT_BASE + index,
                        name="http",
                        protocol="HTTP",
                    ),
                ),
                sidecar=SidecarPorts(
                    outbound_port=OUTBOUND_PORT_BASE + index, admin_port=ADMIN_PORT_BASE + index
                ),
                healthy=name != "reviews-v3",
            )
        )
    result.append(
        WorkloadInstance(
            name="istio-ingressgateway-0",
            namespace="istio-system",
            workload="istio-ingressgateway",
            labels={"istio": "ingressgateway"},
            kind=ProxyKind.ROUTER,
        )
    )
    return result


def services(insts: list[WorkloadInstance]) -> dict[str, Service]:
    by_app: dict[tuple[str, str], list[WorkloadInstance]] = {}
    for inst in insts:
        if inst.kind is ProxyKind.SIDECAR:
            by_app.setdefault((inst.namespace, inst.labels["app"]), []).append(inst)
    result = {}
    for (namespace, app), members in by_app.items():
        port = members[0].ports[0].container_port
        endpoints = tuple(
            Endpoint(
                address="127.0.0.1",
                port=m.ports[0].inbound_port or 0,
                labels=dict(m.labels),
                namespace=namespace,
                instance=m.name,
                healthy=m.healthy,
                has_sidecar=True,
            )
            for m in members
        )
        hostname = f"{app}.{namespace}.svc.cluster.local"
        result[hostname] = Service(
            hostname=hostname,
            namespace=namespace,
            name=app,
            ports=(ServicePort("http", port, "HTTP"),),
            endpoints={port: endpoints},
        )
    result["httpbin.org"] = Service(
        hostname="httpbin.org",
        namespace="default",
        name="httpbin.org",
        ports=(ServicePort("http", 80, "HTTP"),),
        resolution=Resolution.DNS,
        mesh_external=True,
        origin="ServiceEntry",
    )
    return result


def snapshot(config: str = CONFIG, mesh_config: Any = None, version: str = "v1") -> MeshSnapshot:
    """The bookinfo-like snapshot, with `config` as its Istio resources."""
    loaded = load_text(config, "test.yaml")
    loaded.raise_for_errors()
    by_kind: dict[str, list[Any]] = {}
    for resource in loaded.resources:
        by_kind.setdefault(resource.kind, []).append(resource)
    insts = instances()
    return MeshSnapshot(
        version=version,
        mesh_config=mesh_config if mesh_config is not None else MeshConfig(),
        services=services(insts),
        instances={i.node_id: i for i in insts},
        virtual_services=tuple(by_kind.get("VirtualService", ())),
        destination_rules=tuple(by_kind.get("DestinationRule", ())),
        gateways=tuple(by_kind.get("Gateway", ())),
    )


def node(name: str) -> str:
    """The node id of an instance of the test mesh by instance name."""
    return next(i.node_id for i in instances() if i.name == name)
