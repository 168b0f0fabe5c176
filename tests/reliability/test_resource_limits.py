"""Promise 8: resource limits.

- A misbehaving client opens 1,500 connections to a sidecar's proxy port, each asking
  for a slow request: the DestinationRule's connection pool (Envoy circuit breakers)
  bounds what reaches the app, the excess is refused fast with 503, nothing hangs, the
  control plane stays responsive, and steady traffic through the gateway loses nothing.
- A thousand proxies connect to the control plane's xDS port at once: every one gets
  its config, the control plane keeps answering its admin API, and it is still the same
  process afterwards.
"""

from __future__ import annotations

import asyncio
import http.client
import re
import time
import urllib.parse
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from tests.e2e.conftest import Mesh
from tests.helpers import http_get, wait_for
from tests.reliability.conftest import admin_url, failure_stats, instance
from tests.reliability.load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(120)]

FLOOD_CONNECTIONS = 1500
MAX_CONNECTIONS = 8
MAX_PENDING = 16
PROXIES = 1000
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

POOL_RULE = f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: hello-pool
spec:
  host: hello
  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: {MAX_CONNECTIONS}
      http:
        http1MaxPendingRequests: {MAX_PENDING}
"""


async def _flood(port: int, count: int) -> dict[str, int]:
    """`count` connections at once, each one slow request through the sidecar's proxy."""
    request = (b"GET http://hello:8000/slow?ms=300 HTTP/1.1\r\nHost: hello:8000\r\n"
               b"Connection: close\r\n\r\n")

    async def one() -> str:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError as exc:
            return f"connect: {exc.errno}"
        try:
            writer.write(request)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 30)
            return line.split(b" ")[1].decode() if line else "closed"
        except (OSError, TimeoutError, IndexError) as exc:
            return type(exc).__name__
        finally:
            writer.close()

    results = await asyncio.gather(*(one() for _ in range(count)))
    counts: dict[str, int] = {}
    for result in results:
        counts[result] = counts.get(result, 0) + 1
    return counts


def _stat(admin_port: int, name: str) -> int:
    """One Envoy stat by its exact name."""
    query = urllib.parse.urlencode({"filter": f"^{re.escape(name)}$"})
    _, body, _ = http_get(f"http://127.0.0.1:{admin_port}/stats?{query}")
    values = [line.rsplit(":", 1)[1] for line in body.splitlines() if line.startswith(name)]
    assert len(values) == 1, body
    return int(values[0])


def test_connection_flood_is_bounded_by_circuit_breakers(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    assert mesh.apply(POOL_RULE).returncode == 0
    victim = instance(mesh, "hello-v1-0")
    proxy_port, admin_port = victim["sidecar"]["outbound_port"], victim["sidecar"]["admin_port"]
    cluster = "outbound|8000||hello.default.svc.cluster.local"
    limit_line = f"{cluster}::default_priority::max_connections::{MAX_CONNECTIONS}"
    wait_for(
        lambda: limit_line in http_get(f"http://127.0.0.1:{admin_port}/clusters")[1],
        timeout=15,
        what="the connection pool limits in the sidecar",
    )
    cp_health = admin_url(mesh, "/healthz")
    with SteadyLoad(mesh.gateway_url("/"), rate=100, max_seconds=60) as load:
        started = time.monotonic()
        counts = asyncio.run(_flood(proxy_port, FLOOD_CONNECTIONS))
        flood_s = time.monotonic() - started
        health_at = time.monotonic()
        assert http_get(cp_health, timeout=2)[0] == 200
        health_s = time.monotonic() - health_at
    result = load.result
    overflow = _stat(admin_port, f"cluster.{cluster}.upstream_rq_pending_overflow")
    print(f"\nconnection flood: {counts} in {flood_s:.1f}s; pending overflows {overflow}; "
          f"control plane /healthz {health_s * 1000:.0f} ms; gateway load {result.summary()}")
    assert counts.get("200", 0) >= MAX_CONNECTIONS
    assert counts.get("503", 0) > FLOOD_CONNECTIONS / 2, counts
    assert set(counts) <= {"200", "503"}, counts
    assert overflow > 0
    assert result.failed == 0, f"{result.summary()}\n{failure_stats(mesh)}"
    # The sidecar serves normally once the flood is over.
    assert _via_proxy(proxy_port, "http://hello:8000/") == 200


def _via_proxy(proxy_port: int, url: str) -> int:
    """Status of one GET of an absolute URL through a sidecar's HTTP proxy port."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    try:
        conn.request("GET", url)
        return conn.getresponse().status
    finally:
        conn.close()


async def _connect_proxies(xds: str, node_id: str, count: int) -> tuple[int, float]:
    """`count` ADS streams, each on its own channel; (how many got CDS, seconds taken)."""
    channels = [grpc.aio.insecure_channel(xds) for _ in range(count)]
    calls: list[Any] = []
    started = time.monotonic()
    try:
        async def one(channel: grpc.aio.Channel, n: int) -> bool:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
            calls.append(call)
            node = base_pb2.Node(id=node_id, cluster=f"fake-{n}")
            await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER_TYPE))
            response = await asyncio.wait_for(call.read(), 60)
            return bool(response.resources)

        got = await asyncio.gather(*(one(c, n) for n, c in enumerate(channels)),
                                   return_exceptions=True)
        return sum(1 for g in got if g is True), time.monotonic() - started
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*(c.close() for c in channels), return_exceptions=True)


def test_thousand_proxies_at_once(make_mesh: Any, hello_mesh_files: dict[str, str]) -> None:
    mesh: Mesh = make_mesh(hello_mesh_files, xds_tls="false")
    wait_for(lambda: mesh.get(mesh.gateway_url("/"))[0] == 200, timeout=20, what="mesh up")
    info = mesh.run_info()
    cp_pid, xds = info["control_plane"]["pid"], info["control_plane"]["xds"]
    node_id = instance(mesh, "hello-v1-0")["node"]
    with SteadyLoad(mesh.gateway_url("/"), rate=50, max_seconds=90) as load:
        got, took = asyncio.run(_connect_proxies(xds, node_id, PROXIES))
        status, _, _ = http_get(admin_url(mesh, "/healthz"), timeout=5)
    result = load.result
    rss_kib = _rss_kib(cp_pid)
    print(f"\n{PROXIES} proxies: {got} got their config in {took:.1f}s; control plane RSS "
          f"{rss_kib / 1024:.0f} MiB; gateway load {result.summary()}")
    assert got == PROXIES
    assert status == 200
    assert mesh.run_info()["control_plane"]["pid"] == cp_pid
    assert result.failed == 0, f"{result.summary()}\n{failure_stats(mesh)}"


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
