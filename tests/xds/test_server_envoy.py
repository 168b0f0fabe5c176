"""The xDS server against real Envoy: config reaches traffic, NACKs show, fixes sync.

Each test serves a tiny mesh from a test ConfigSource: listener `front` (RDS
`front_routes`) forwards to EDS cluster `backend`, whose endpoint is listener `back` of
the same Envoy, whose RDS `back_routes` answers with a direct response body.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import regex_pb2
from google.protobuf import any_pb2

from ratline.xds import ProxyStatus, SyncState, XdsServer, group_by_type, pack
from ratline.xds.types import Resources, VersionedResource
from tests.helpers import free_fixed_port

pytestmark = pytest.mark.e2e

NODE = "sidecar~127.0.0.1~test-0.default~default.svc.cluster.local"
T = TypeVar("T")
StartEnvoy = Callable[..., Any]
"""The `start_envoy` fixture of conftest.py: (node_id, xds_port, *, delta) → EnvoyProcess."""


def ads_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def socket_address(port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=port)
    )


def http_listener(name: str, port: int, route_config: str) -> listener_pb2.Listener:
    router = any_pb2.Any()
    router.Pack(router_pb2.Router())
    manager = hcm_pb2.HttpConnectionManager(
        stat_prefix=name,
        rds=hcm_pb2.Rds(config_source=ads_source(), route_config_name=route_config),
        http_filters=[hcm_pb2.HttpFilter(name="envoy.filters.http.router", typed_config=router)],
    )
    typed_manager = any_pb2.Any()
    typed_manager.Pack(manager)
    chain = listener_components_pb2.FilterChain(
        filters=[
            listener_components_pb2.Filter(
                name="envoy.filters.network.http_connection_manager", typed_config=typed_manager
            )
        ]
    )
    return listener_pb2.Listener(name=name, address=socket_address(port), filter_chains=[chain])


def eds_cluster(name: str) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.DiscoveryType.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(eds_config=ads_source()),
    )
    cluster.connect_timeout.seconds = 1
    return cluster


def load_assignment(name: str, port: int) -> endpoint_pb2.ClusterLoadAssignment:
    endpoint = endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(address=socket_address(port))
    )
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])],
    )


def route_config(
    name: str, routes: list[route_components_pb2.Route]
) -> route_pb2.RouteConfiguration:
    host = route_components_pb2.VirtualHost(name=name, domains=["*"], routes=routes)
    return route_pb2.RouteConfiguration(name=name, virtual_hosts=[host])


def to_cluster(cluster: str) -> route_components_pb2.Route:
    return route_components_pb2.Route(
        match=route_components_pb2.RouteMatch(prefix="/"),
        route=route_components_pb2.RouteAction(cluster=cluster),
    )


def answer(body: str, match: route_components_pb2.RouteMatch) -> route_components_pb2.Route:
    return route_components_pb2.Route(
        match=match,
        direct_response=route_components_pb2.DirectResponseAction(
            status=200, body=base_pb2.DataSource(inline_string=body)
        ),
    )


class TinyMesh:
    """A ConfigSource whose knobs the tests turn."""

    def __init__(self, front_port: int, back_port: int) -> None:
        self.front_port, self.back_port = front_port, back_port
        self.known = True
        self.body = "v1"
        self.broken_regex = False
        self.extra_cluster = False
        self.calls = 0

    def resources_for(self, node_id: str) -> tuple[str, Resources] | None:
        self.calls += 1
        if not self.known or node_id != NODE:
            return None
        back_routes = [answer(self.body, route_components_pb2.RouteMatch(prefix="/"))]
        if self.broken_regex:
            regex = regex_pb2.RegexMatcher(regex="((unclosed")
            bad_match = route_components_pb2.RouteMatch(safe_regex=regex)
            back_routes.insert(0, answer("never", bad_match))
        resources: list[VersionedResource] = [
            pack(eds_cluster("backend")),
            pack(load_assignment("backend", self.back_port)),
            pack(http_listener("front", self.front_port, "front_routes")),
            pack(http_listener("back", self.back_port, "back_routes")),
            pack(route_config("front_routes", [to_cluster("backend")])),
            pack(route_config("back_routes", back_routes)),
        ]
        if self.extra_cluster:
            resources.append(pack(eds_cluster("extra")))
            resources.append(pack(load_assignment("extra", self.back_port)))
        return "test", group_by_type(resources)


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], timeout_s: float = 5.0
) -> T:
    """Poll `probe` until `check` accepts its value; fail with the last value at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = await probe()
            if check(value):
                return value
            last: object = value
        except (aiohttp.ClientError, OSError) as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last: {last!r}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def mesh() -> TinyMesh:
    # Below the ephemeral range: a port from bind(0) may be handed to the next outgoing
    # connection before Envoy binds it again (the back listener's re-add once failed so).
    front = free_fixed_port()
    back = next(port for port in (free_fixed_port() for _ in range(20)) if port != front)
    return TinyMesh(front_port=front, back_port=back)


@pytest.fixture
async def xds(mesh: TinyMesh) -> AsyncIterator[XdsServer]:
    server = XdsServer(mesh)
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


def make_get(http: aiohttp.ClientSession, url: str) -> Callable[[], Awaitable[str]]:
    async def get() -> str:
        async with http.get(url) as response:
            return f"{response.status} {await response.text()}"

    return get


def status_of(xds: XdsServer) -> Callable[[], Awaitable[ProxyStatus | None]]:
    async def probe() -> ProxyStatus | None:
        return xds.proxy_status(NODE)

    return probe


def state(status: ProxyStatus | None, short_name: str) -> SyncState | None:
    type_status = status.type_status(short_name) if status else None
    return type_status.state if type_status else None


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_config_change_nack_and_fix_reach_envoy(
    delta: bool,
    mesh: TinyMesh,
    xds: XdsServer,
    http: aiohttp.ClientSession,
    start_envoy: StartEnvoy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ratline.xds")
    assert xds.port is not None
    envoy = start_envoy(NODE, xds.port, delta=delta)
    get = make_get(http, f"http://127.0.0.1:{mesh.front_port}/")

    await eventually(get, lambda text: text == "200 v1")
    status = await eventually(status_of(xds), lambda s: s is not None and s.synced)
    assert status is not None
    assert status.mode == ("delta" if delta else "sotw")
    assert {t.short_name for t in status.types.values()} == {"CDS", "EDS", "LDS", "RDS"}

    # A route change reaches traffic.
    mesh.body = "v2"
    xds.notify([NODE])
    await eventually(get, lambda text: text == "200 v2")
    await eventually(status_of(xds), lambda s: s is not None and s.synced)

    # An invalid route configuration is NACKed; Envoy keeps serving the last good one.
    mesh.broken_regex = True
    xds.notify([NODE])
    status = await eventually(status_of(xds), lambda s: state(s, "RDS") is SyncState.STALE)
    rds = status.type_status("RDS") if status else None
    assert rds is not None and rds.nack is not None
    assert "((unclosed" in rds.nack.message, rds.nack.message
    assert rds.acked_version != rds.sent_version
    assert state(status, "CDS") is SyncState.SYNCED
    assert await get() == "200 v2"

    # The fix syncs again and clears the NACK.
    mesh.broken_regex = False
    mesh.body = "v3"
    xds.notify()
    await eventually(get, lambda text: text == "200 v3")
    status = await eventually(status_of(xds), lambda s: s is not None and s.synced)
    rds = status.type_status("RDS") if status else None
    assert rds is not None and rds.nack is None and rds.acked_version == rds.sent_version

    nack_logs = [r for r in caplog.records if "rejected" in r.getMessage()]
    assert len(nack_logs) == 1, [r.getMessage() for r in nack_logs]
    assert envoy.process.poll() is None


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_cluster_added_then_removed(
    delta: bool,
    mesh: TinyMesh,
    xds: XdsServer,
    http: aiohttp.ClientSession,
    start_envoy: StartEnvoy,
) -> None:
    assert xds.port is not None
    mesh.extra_cluster = True
    envoy = start_envoy(NODE, xds.port, delta=delta)
    clusters = make_get(http, f"{await envoy.admin_url()}/clusters")
    await eventually(clusters, lambda text: "\nextra::127.0.0.1" in text)

    mesh.extra_cluster = False
    xds.notify()
    await eventually(clusters, lambda text: "extra::" not in text and "backend::" in text)
    await eventually(status_of(xds), lambda s: s is not None and s.synced)

    dump = make_get(http, f"{await envoy.admin_url()}/config_dump")
    text = await dump()
    assert '"name": "backend"' in text and '"name": "extra"' not in text


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_unknown_node_waits_until_known_and_disconnect_is_seen(
    delta: bool,
    mesh: TinyMesh,
    http: aiohttp.ClientSession,
    start_envoy: StartEnvoy,
) -> None:
    connects: list[str] = []
    disconnects: list[str] = []
    mesh.known = False
    xds = XdsServer(mesh, on_connect=connects.append, on_disconnect=disconnects.append)
    port = await xds.start("127.0.0.1", 0)
    try:
        envoy = start_envoy(NODE, port, delta=delta)
        status = await eventually(
            status_of(xds), lambda s: s is not None and state(s, "CDS") is SyncState.NOT_SENT
        )
        assert status is not None and status.connected
        assert connects == [NODE]

        mesh.known = True
        xds.notify([NODE])
        get = make_get(http, f"http://127.0.0.1:{mesh.front_port}/")
        await eventually(get, lambda text: text == "200 v1")

        envoy.stop()
        status = await eventually(status_of(xds), lambda s: s is not None and not s.connected)
        assert status is not None and status.disconnected_at is not None
        assert [s.node_id for s in xds.status()] == [NODE]
        assert disconnects == [NODE]
    finally:
        await xds.stop()
