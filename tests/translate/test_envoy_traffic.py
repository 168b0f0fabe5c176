"""Real traffic through real Envoy running exactly what translation produced.

The generated resources are loaded as static config (EDS and RDS inlined), backends are
small HTTP servers that answer with their own name, and requests go through the sidecar's
HTTP proxy listener as an app's HTTP_PROXY requests would, or through the gateway.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ratline.api.loader import load_text
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.model.snapshot import Endpoint, MeshSnapshot, Service, ServicePort
from ratline.registry.instances import InstancePort, ProxyKind, SidecarPorts, WorkloadInstance
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from tests.helpers import free_port, kill_pids, wait_for
from tests.translate.static_config import write_bootstrap

CONFIG = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
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
      weight: 100
    - destination: {host: reviews, subset: v2}
      weight: 0
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match:
    - uri: {prefix: /teapot}
    directResponse: {status: 418, body: {string: short and stout}}
  - match:
    - uri: {prefix: /old}
    rewrite: {uri: /new}
    route:
    - destination: {host: ratings}
  - route:
    - destination: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: GATEWAY_PORT, name: http, protocol: HTTP}
    hosts: ["bookinfo.example"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo}
spec:
  hosts: ["*"]
  gateways: [istio-system/gw]
  http:
  - match:
    - uri: {prefix: /reviews}
    route:
    - destination: {host: reviews, subset: v2}
"""


class _Backend(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = f"{self.server.name} {self.path} {self.headers.get('host')}".encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[Callable[[str], int]]:
    """Start named HTTP backends on free ports; all are shut down after the test."""
    servers: list[ThreadingHTTPServer] = []

    def start(name: str) -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
        server.name = name  # type: ignore[attr-defined]
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return int(server.server_address[1])

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def run_envoy(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """Run Envoy on a bootstrap file; every Envoy started is stopped by PID afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    envoy = Settings.from_env().envoy

    def run(config: Path) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"envoy-{len(started)}.log").open("wb")
        process = subprocess.Popen(
            [
                envoy,
                "-c",
                str(config),
                "--disable-hot-restart",
                "--concurrency",
                "1",
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield run
    kill_pids([p.pid for p in started])
    for process in started:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)


def _get(
    url: str, proxy: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy} if proxy else {})
    )
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _snapshot(ports: dict[str, int], client: WorkloadInstance, gateway_port: int) -> MeshSnapshot:
    loaded = load_text(CONFIG.replace("GATEWAY_PORT", str(gateway_port)), "traffic.yaml")
    loaded.raise_for_errors()
    kinds: dict[str, list[object]] = {}
    for resource in loaded.resources:
        kinds.setdefault(resource.kind, []).append(resource)

    def service(name: str, versions: list[str]) -> Service:
        endpoints = tuple(
            Endpoint("127.0.0.1", ports[f"{name}-{v}"], labels={"app": name, "version": v})
            for v in versions
        )
        return Service(
            hostname=f"{name}.default.svc.cluster.local",
            namespace="default",
            name=name,
            ports=(ServicePort("http", 9080, "HTTP"),),
            endpoints={9080: endpoints},
        )

    gateway = WorkloadInstance(
        name="gw-0",
        namespace="istio-system",
        workload="gw",
        labels={"istio": "ingressgateway"},
        kind=ProxyKind.ROUTER,
    )
    services = [service("reviews", ["v1", "v2"]), service("ratings", ["v1"])]
    return MeshSnapshot(
        version="t1",
        mesh_config=MeshConfig(),
        services={s.hostname: s for s in services},
        instances={client.node_id: client, gateway.node_id: gateway},
        virtual_services=tuple(kinds["VirtualService"]),  # type: ignore[arg-type]
        destination_rules=tuple(kinds["DestinationRule"]),  # type: ignore[arg-type]
        gateways=tuple(kinds["Gateway"]),  # type: ignore[arg-type]
    )


def test_sidecar_and_gateway_route_real_requests(
    tmp_path: Path,
    backends: Callable[[str], int],
    run_envoy: Callable[[Path], subprocess.Popen[bytes]],
) -> None:
    ports = {n: backends(n) for n in ("reviews-v1", "reviews-v2", "ratings-v1", "app", "outside")}
    outbound, inbound, gateway_port = free_port(), free_port(), free_port()
    client = WorkloadInstance(
        name="client-0",
        namespace="default",
        workload="client",
        ports=(InstancePort(container_port=9080, app_port=ports["app"], inbound_port=inbound),),
        sidecar=SidecarPorts(outbound_port=outbound, admin_port=0),
    )
    snapshot = _snapshot(ports, client, gateway_port)
    settings = replace(Settings.from_env(), bind_address="127.0.0.1")
    generator = MeshGenerator(snapshot, settings)
    sidecar = generator.protos_for(client.node_id)
    gateway = generator.protos_for(next(n for n in snapshot.instances if n.startswith("router")))
    assert sidecar is not None and gateway is not None
    run_envoy(write_bootstrap(tmp_path / "sidecar.json", sidecar))
    run_envoy(write_bootstrap(tmp_path / "gateway.json", gateway))
    proxy = f"http://127.0.0.1:{outbound}"

    # inbound: the sidecar's inbound listener forwards to the app
    status, body = wait_for(lambda: _get(f"http://127.0.0.1:{inbound}/in"), what="inbound")
    assert (status, body.split()[0]) == (200, "app")

    # outbound by Host, header match to a subset, weights
    status, body = wait_for(lambda: _get("http://reviews:9080/r", proxy), what="http_proxy")
    assert (status, body.split()[:2]) == (200, ["reviews-v1", "/r"])
    jason = _get("http://reviews:9080/r", proxy, {"end-user": "jason"})
    assert jason[1].split()[0] == "reviews-v2"
    assert {
        _get("http://reviews.default.svc.cluster.local:9080/", proxy)[1].split()[0]
        for _ in range(10)
    } == {"reviews-v1"}

    # direct response and rewrite
    assert _get("http://ratings:9080/teapot", proxy) == (418, "short and stout")
    assert _get("http://ratings:9080/old/x", proxy)[1].split()[:2] == ["ratings-v1", "/new/x"]

    # ALLOW_ANY: a host outside the registry passes through (dynamic forward proxy)
    outside = _get(f"http://127.0.0.1:{ports['outside']}/o", proxy)
    assert (outside[0], outside[1].split()[:2]) == (200, ["outside", "/o"])

    # gateway: host from the server, route from the bound VirtualService
    gateway_url = f"http://127.0.0.1:{gateway_port}/reviews"
    status, body = wait_for(
        lambda: _get(gateway_url, headers={"host": "bookinfo.example"}), what="gateway"
    )
    assert (status, body.split()[0]) == (200, "reviews-v2")
    with_port = _get(gateway_url, headers={"host": f"bookinfo.example:{gateway_port}"})
    assert with_port[1].split()[0] == "reviews-v2"
    assert _get(gateway_url, headers={"host": "other.example"})[0] == 404
