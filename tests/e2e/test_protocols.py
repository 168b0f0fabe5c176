"""Protocols through real Envoys: gRPC (h2c) with routing on method paths and retries on
`unavailable`, a port named `http2`, and WebSocket upgrades through the gateway and
through both sidecars.

One mesh for the module: a gRPC echo service (v1 answers `one …`, v2 `two …`) with a
`grpc` and an `http2` port, a WebSocket echo service, and a `sleep` client whose
sidecar's local listener and HTTP proxy the test uses as that client's app would.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest

from tests.e2e.conftest import Mesh, mesh_env, version_subsets, wait_status
from tests.helpers import free_fixed_port, wait_for

pytestmark = [pytest.mark.e2e]

APPS = Path(__file__).resolve().parent / "apps"
GRPC_HOST = "grpc-echo.default.svc.cluster.local"


def _workload(name: str, labels: str, command: str, ports: str) -> str:
    return f"""---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: {name}
  labels: {{{labels}}}
spec:
  command: [{sys.executable}, {command}]
  ports: [{ports}]
"""


MESH_YAML = (
    """\
apiVersion: v1
kind: Service
metadata: {name: grpc-echo}
spec:
  selector: {app: grpc-echo}
  ports:
  - {name: grpc, port: 50051, targetPort: 50051}
  - {name: http2-echo, port: 50052, targetPort: 50051}
---
"""
    + version_subsets("grpc-echo")
    + """---
apiVersion: v1
kind: Service
metadata: {name: ws-echo}
spec:
  selector: {app: ws-echo}
  ports: [{name: http-ws, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ws-gateway}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ws-echo}
spec:
  hosts: ["*"]
  gateways: [ws-gateway]
  http:
  - route: [{destination: {host: ws-echo, port: {number: 8080}}}]
"""
    + _workload("grpc-echo-v1", "app: grpc-echo, version: v1", "grpc_echo.py, one",
                "{name: grpc, containerPort: 50051}")
    + _workload("grpc-echo-v2", "app: grpc-echo, version: v2", "grpc_echo.py, two",
                "{name: grpc, containerPort: 50051}")
    + _workload("ws-echo-v1", "app: ws-echo, version: v1", "ws_echo.py, ws",
                "{name: http-ws, containerPort: 8080}")
    + _workload("sleep", "app: sleep", "-c, 'import time; time.sleep(86400)'", "")
)


@pytest.fixture(scope="module")
def proto_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh_dir = tmp_path_factory.mktemp("protocols") / "mesh"
    mesh_dir.mkdir()
    (mesh_dir / "mesh.yaml").write_text("")
    (mesh_dir / "protocols.yaml").write_text(MESH_YAML)
    for app in ("grpc_echo.py", "ws_echo.py"):
        shutil.copy(APPS / app, mesh_dir / app)
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    try:
        mesh.up()
        wait_status(mesh, mesh.gateway_url("/"), timeout=30)
        wait_for(lambda: say(mesh, "ready").startswith(("one", "two")), timeout=30,
                 what="gRPC through the sleep sidecar")
        yield mesh
    finally:
        mesh.down()


def _sleep_sidecar(mesh: Mesh) -> dict[str, object]:
    found = next(i for i in mesh.run_info()["instances"] if i["name"] == "sleep-0")
    return found["sidecar"]  # type: ignore[no-any-return]


def local_port(mesh: Mesh, port: int) -> int:
    """The sleep sidecar's local listener for grpc-echo:PORT (its app's GRPC_ECHO_…)."""
    for entry in _sleep_sidecar(mesh)["outbound"]:  # type: ignore[attr-defined]
        if (entry["hostname"], entry["port"]) == (GRPC_HOST, port):
            return int(entry["local_port"])
    raise AssertionError(f"no local listener for {GRPC_HOST}:{port}")


def _call(mesh: Mesh, method: str, request: str, port: int = 50051) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{local_port(mesh, port)}") as channel:
        stub = channel.unary_unary(f"/echo.Echo/{method}")
        return bytes(stub(request.encode(), timeout=5)).decode()


def say(mesh: Mesh, request: str, port: int = 50051) -> str:
    return _call(mesh, "Say", request, port)


def flaky(mesh: Mesh, key: str) -> str:
    return _call(mesh, "Flaky", key)


GRPC_ROUTES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grpc-echo}
spec:
  hosts: [grpc-echo]
  http:
  - match: [{uri: {prefix: /echo.Echo/Say}}]
    route: [{destination: {host: grpc-echo, subset: SAY}}]
  - route: [{destination: {host: grpc-echo, subset: v1}}]
    RETRIES
"""


def test_grpc_and_http2_reach_both_versions_without_routes(proto_mesh: Mesh) -> None:
    for port in (50051, 50052):
        seen = Counter(say(proto_mesh, f"r{i}", port).split()[0] for i in range(30))
        assert set(seen) == {"one", "two"}, (port, seen)
    assert say(proto_mesh, "hello world") in ("one hello world", "two hello world")


def test_grpc_routing_on_method_paths_and_retries_on_unavailable(proto_mesh: Mesh) -> None:
    routes = GRPC_ROUTES.replace("SAY", "v2")
    retries = "retries: {attempts: 3, retryOn: unavailable}"
    path = proto_mesh.apply_ok(routes.replace("RETRIES", retries), "grpc-vs.yaml")
    try:
        wait_for(lambda: {say(proto_mesh, "x").split()[0] for _ in range(20)} == {"two"},
                 timeout=20, what="/echo.Echo/Say to v2")
        # The same rule on the http2 port's listener.
        assert {say(proto_mesh, "y", 50052).split()[0] for _ in range(10)} == {"two"}
        # Other methods take the last rule: v1, whose first answer per key is UNAVAILABLE;
        # Envoy retried it.
        assert flaky(proto_mesh, "key-1") == "one attempt 2"

        # Without retries the UNAVAILABLE reaches the client.
        proto_mesh.apply_ok(routes.replace("RETRIES", "retries: {attempts: 0}"), "grpc-vs.yaml")
        keys = itertools.count()

        def unavailable_passes_through() -> bool:
            try:
                flaky(proto_mesh, f"key-0-{next(keys)}")  # a new key: its first call fails
            except grpc.RpcError as exc:
                return exc.code() is grpc.StatusCode.UNAVAILABLE
            return False

        wait_for(unavailable_passes_through, timeout=20, what="UNAVAILABLE not retried")
        # retryOn without `unavailable` (5xx: HTTP statuses) does not retry gRPC errors.
        # (Say moves to v1 with it, to tell when the new routes are in force.)
        routes = GRPC_ROUTES.replace("SAY", "v1")
        retries = "retries: {attempts: 3, retryOn: 5xx}"
        proto_mesh.apply_ok(routes.replace("RETRIES", retries), "grpc-vs.yaml")
        wait_for(lambda: {say(proto_mesh, "x").split()[0] for _ in range(20)} == {"one"},
                 timeout=20, what="the 5xx retry policy in force")
        with pytest.raises(grpc.RpcError) as raised:
            flaky(proto_mesh, "key-5xx")
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        proto_mesh.delete_file(path)


async def _websocket_round_trip(url: str, proxy: str | None = None) -> list[str]:
    async with aiohttp.ClientSession() as session, session.ws_connect(
        url, proxy=proxy, timeout=aiohttp.ClientWSTimeout(ws_close=5)
    ) as ws:
        replies = []
        for text in ("first", "second"):
            await ws.send_str(text)
            message = await asyncio.wait_for(ws.receive(), 5)
            replies.append(str(message.data))
        return replies


def test_websocket_through_the_gateway(proto_mesh: Mesh) -> None:
    url = proto_mesh.gateway_url("/ws")
    assert asyncio.run(_websocket_round_trip(url)) == ["ws first", "ws second"]


def test_websocket_through_both_sidecars(proto_mesh: Mesh) -> None:
    proxy = f"http://127.0.0.1:{_sleep_sidecar(proto_mesh)['outbound_port']}"
    replies = asyncio.run(_websocket_round_trip("http://ws-echo:8080/ws", proxy))
    assert replies == ["ws first", "ws second"]


def test_grpc_status_abort_reaches_the_grpc_client(proto_mesh: Mesh) -> None:
    """A `fault.abort.grpcStatus` (translated with the HTTP routes) seen by a real gRPC
    client: only on the method it matches."""
    path = proto_mesh.apply_ok("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: grpc-echo}
spec:
  hosts: [grpc-echo]
  http:
  - match: [{uri: {exact: /echo.Echo/Say}}]
    fault:
      abort: {grpcStatus: RESOURCE_EXHAUSTED, percentage: {value: 100}}
    route: [{destination: {host: grpc-echo, subset: v1}}]
  - route: [{destination: {host: grpc-echo, subset: v2}}]
    retries: {attempts: 3, retryOn: unavailable}
""", "grpc-vs.yaml")
    try:
        def aborted() -> bool:
            try:
                say(proto_mesh, "x")
            except grpc.RpcError as exc:
                return exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

        wait_for(aborted, timeout=20, what="Say aborted with RESOURCE_EXHAUSTED")
        assert all(aborted() for _ in range(10))
        # Another method is not aborted (and is retried on v2 as the second rule says).
        assert flaky(proto_mesh, "abort-test") == "two attempt 2"
    finally:
        proto_mesh.delete_file(path)
