"""The xDS server as several worker processes (`XdsWorkerPool`), against real Envoys.

The replica copy (`xds.replica`) is checked on its own first: what a worker rebuilds is
what the translator had, resource by resource, shared bases stay shared, and unchanged
sets are not sent again. Then real Envoys connect through a pool of two worker processes
on one port and converge, follow changes and NACKs, and reconnect when a worker dies.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest
from envoy.config.route.v3 import route_components_pb2

from ratline.xds import ResourceSet, SyncState, group_by_type, pack
from ratline.xds.replica import BASE, NODE, RESOURCES, Message, Publisher, Replica
from ratline.xds.types import CLUSTER, ENDPOINT, Resources
from ratline.xds.workers import XdsWorkerPool
from tests.helpers import free_fixed_port
from tests.xds.test_server_envoy import (
    StartEnvoy,
    answer,
    eds_cluster,
    eventually,
    http_listener,
    load_assignment,
    make_get,
    route_config,
    to_cluster,
)

# ---- the replica copy -----------------------------------------------------------------


def _sets(extra: int = 0) -> dict[str, ResourceSet]:
    shared = ResourceSet({f"c{i}": pack(eds_cluster(f"c{i}")) for i in range(3)})
    own = {f"own{i}": pack(eds_cluster(f"own{i}")) for i in range(extra)}
    endpoints = ResourceSet({"c0": pack(load_assignment("c0", 1000))})
    return {CLUSTER: ResourceSet(own, shared), ENDPOINT: endpoints}


def _same(a: Resources, b: Resources) -> bool:
    return {t: {n: (r.version, r.body) for n, r in s.items()} for t, s in a.items()} == {
        t: {n: (r.version, r.body) for n, r in s.items()} for t, s in b.items()
    }


def test_replica_rebuilds_each_proxy_and_shares_the_bases() -> None:
    publisher, replica = Publisher(), Replica()
    first = _sets(extra=1)
    second = {
        CLUSTER: ResourceSet({"mine": pack(eds_cluster("mine"))}, first[CLUSTER].base),
        ENDPOINT: first[ENDPOINT],
    }
    out: list[Message] = []
    publisher.publish("a", ("v1", first), out)
    publisher.publish("b", ("v1", second), out)
    assert replica.apply(out) == {"a", "b"}
    got_a, got_b = replica.resources_for("a"), replica.resources_for("b")
    assert got_a is not None and got_b is not None
    assert got_a[0] == "v1" and _same(got_a[1], first) and _same(got_b[1], second)
    a_clusters, b_clusters = got_a[1][CLUSTER], got_b[1][CLUSTER]
    assert isinstance(a_clusters, ResourceSet) and isinstance(b_clusters, ResourceSet)
    assert a_clusters.base is not None and a_clusters.base is b_clusters.base
    # The shared base and its three clusters travelled once.
    assert sum(1 for m in out if m[0] == BASE) == 1  # the clusters' base
    sent = [r for m in out if m[0] == RESOURCES for r in m[1]]
    assert len(sent) == len({(r[1], r[2], r[3]) for r in sent}) == 3 + 1 + 1 + 1

    # The same sets again: nothing to send. A new endpoint set: only it and the node.
    out = []
    publisher.publish("a", ("v1", first), out)
    assert out == []
    changed = {**first, ENDPOINT: ResourceSet({"c0": pack(load_assignment("c0", 2000))})}
    publisher.publish("a", ("v2", changed), out)
    assert [m[0] for m in out] == [RESOURCES, NODE]  # a flat set: no base
    assert len(out[0][1]) == 1
    replica.apply(out)
    got = replica.resources_for("a")
    assert got is not None and got[0] == "v2" and _same(got[1], changed)


def test_replica_forgets_a_node_the_source_no_longer_knows() -> None:
    publisher, replica = Publisher(), Replica()
    out: list[Message] = []
    publisher.publish("a", ("v1", group_by_type([pack(eds_cluster("x"))])), out)
    publisher.publish("a", None, out)
    assert replica.apply(out) == {"a"}
    assert replica.resources_for("a") is None


# ---- real Envoys through two worker processes -----------------------------------------


class PerNodeMesh:
    """Each node gets its own listener ports; the direct response body is a knob."""

    def __init__(self) -> None:
        self.ports: dict[str, tuple[int, int]] = {}
        self.body = "v1"
        self.broken_node: str | None = None

    def add(self, node_id: str) -> tuple[int, int]:
        # Below the ephemeral range, distinct from every node's (see test_server_envoy).
        used = {port for pair in self.ports.values() for port in pair}
        fresh = (port for port in (free_fixed_port() for _ in range(50)) if port not in used)
        first = next(fresh)
        self.ports[node_id] = (first, next(port for port in fresh if port != first))
        return self.ports[node_id]

    def resources_for(self, node_id: str) -> tuple[str, Resources] | None:
        if node_id not in self.ports:
            return None
        front, back = self.ports[node_id]
        match = route_components_pb2.RouteMatch(prefix="/")
        routes = [answer(f"{self.body} {node_id[-1]}", match)]
        if node_id == self.broken_node:
            from envoy.type.matcher.v3 import regex_pb2

            bad = route_components_pb2.RouteMatch(safe_regex=regex_pb2.RegexMatcher(regex="(("))
            routes.insert(0, answer("never", bad))
        resources = [
            pack(eds_cluster("backend")),
            pack(load_assignment("backend", back)),
            pack(http_listener("front", front, "front_routes")),
            pack(http_listener("back", back, "back_routes")),
            pack(route_config("front_routes", [to_cluster("backend")])),
            pack(route_config("back_routes", routes)),
        ]
        return self.body, group_by_type(resources)


@pytest.fixture
async def pool_mesh() -> PerNodeMesh:
    return PerNodeMesh()


@pytest.fixture
async def pool(pool_mesh: PerNodeMesh) -> AsyncIterator[XdsWorkerPool]:
    server = XdsWorkerPool(pool_mesh, workers=2, nack_retry_s=60, nack_retry_max_s=60)
    await server.start("127.0.0.1", 0)
    yield server
    await server.stop()
    assert all(_gone(pid) for pid in server.worker_pids)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        yield session


def _node(i: int) -> str:
    return f"sidecar~127.0.0.1~app-{i}.default~default.svc.cluster.local{i}"


@pytest.mark.e2e
async def test_envoys_converge_through_two_worker_processes(
    pool: XdsWorkerPool,
    pool_mesh: PerNodeMesh,
    http: aiohttp.ClientSession,
    start_envoy: StartEnvoy,
) -> None:
    assert pool.port is not None and len(pool.worker_pids) == 2
    nodes = [_node(i) for i in range(6)]
    envoys = {}
    for i, node in enumerate(nodes):
        pool_mesh.add(node)
        envoys[node] = start_envoy(node, pool.port, delta=i % 2 == 0)

    async def bodies() -> list[str]:
        return [await make_get(http, f"http://127.0.0.1:{pool_mesh.ports[n][0]}/")() for n in nodes]

    want = [f"200 v1 {n[-1]}" for n in nodes]
    await eventually(bodies, lambda got: got == want, timeout_s=20)
    statuses = await eventually(
        lambda: _async(pool.status()),
        lambda s: len(s) == 6 and all(x.synced and x.connected for x in s),
        timeout_s=10,
    )
    assert {s.mode for s in statuses} == {"delta", "sotw"}
    assert pool.connected_nodes() == set(nodes)

    # A change reaches every proxy, whichever worker holds its stream.
    pool_mesh.body = "v2"
    pool.notify(None)
    await eventually(bodies, lambda got: got == [w.replace("v1", "v2") for w in want])

    # A NACK shows in the status the pool gathers; the others stay synced.
    pool_mesh.broken_node = nodes[1]
    pool.notify([nodes[1]])
    status = await eventually(
        lambda: _async(pool.proxy_status(nodes[1])),
        lambda s: (
            s is not None
            and (rds := s.type_status("RDS")) is not None
            and rds.state is SyncState.STALE
            and rds.nack is not None
        ),
    )
    assert status is not None
    rds = status.type_status("RDS")
    assert rds is not None and rds.nack is not None and "((" in rds.nack.message
    assert all(s.synced for s in pool.status() if s.node_id != nodes[1])

    # A proxy that goes away is seen as disconnected.
    envoys[nodes[0]].stop()
    gone = await eventually(
        lambda: _async(pool.proxy_status(nodes[0])), lambda s: s is not None and not s.connected
    )
    assert gone is not None and gone.disconnected_at is not None

    # A worker that dies is started again; its proxies reconnect and converge.
    victim = pool.worker_pids[0]
    os.kill(victim, signal.SIGKILL)
    pool_mesh.broken_node = None
    pool_mesh.body = "v3"
    pool.notify(None)
    await eventually(
        bodies_of(http, pool_mesh, nodes[1:]),
        lambda got: got == [f"200 v3 {n[-1]}" for n in nodes[1:]],
        timeout_s=30,
    )
    await eventually(
        lambda: _async(pool.worker_pids),
        lambda pids: len(pids) == 2 and victim not in pids,
        timeout_s=30,
    )
    await eventually(
        lambda: _async(pool.status()),
        lambda s: sum(1 for x in s if x.connected and x.synced) == 5,
        timeout_s=30,
    )


def bodies_of(http: aiohttp.ClientSession, mesh: PerNodeMesh, nodes: list[str]):  # type: ignore[no-untyped-def]
    async def probe() -> list[str]:
        return [await make_get(http, f"http://127.0.0.1:{mesh.ports[n][0]}/")() for n in nodes]

    return probe


async def _async(value):  # type: ignore[no-untyped-def]
    return value
