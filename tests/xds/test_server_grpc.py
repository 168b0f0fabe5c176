"""The xDS server over real gRPC with a scripted client: coalescing, status, bad streams."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from ratline.xds import CLUSTER, SyncState, XdsServer, group_by_type, pack
from ratline.xds.types import Resources


class CountingSource:
    """Serves clusters named in `names`; counts how often it is asked."""

    def __init__(self) -> None:
        self.names = ["a"]
        self.calls = 0

    def resources_for(self, node_id: str) -> tuple[str, Resources] | None:
        self.calls += 1
        clusters = [pack(cluster_pb2.Cluster(name=name)) for name in self.names]
        return str(self.calls), group_by_type(clusters)


@pytest.fixture
async def source() -> CountingSource:
    return CountingSource()


@pytest.fixture
async def server(source: CountingSource) -> AsyncIterator[XdsServer]:
    xds = XdsServer(source)
    await xds.start("127.0.0.1", 0)
    yield xds
    await xds.stop()


@pytest.fixture
async def stub(server: XdsServer) -> AsyncIterator[ads_pb2_grpc.AggregatedDiscoveryServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)


async def until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_sotw_ack_status_and_coalesced_notifications(
    source: CountingSource,
    server: XdsServer,
    stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub,
) -> None:
    call = stub.StreamAggregatedResources()
    node = base_pb2.Node(id="node-1")
    await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER))
    first = await asyncio.wait_for(call.read(), 3)
    assert first.type_url == CLUSTER and len(first.resources) == 1
    await call.write(
        discovery_pb2.DiscoveryRequest(
            type_url=CLUSTER, version_info=first.version_info, response_nonce=first.nonce
        )
    )
    await until(lambda: (s := server.proxy_status("node-1")) is not None and s.synced)
    status = server.proxy_status("node-1")
    assert status is not None and status.snapshot_version == "1"
    assert status.to_json()["types"]["CDS"]["state"] == "SYNCED"

    calls_before = source.calls
    source.names = ["a", "b"]
    for _ in range(10):
        server.notify()
    second = await asyncio.wait_for(call.read(), 3)
    assert len(second.resources) == 2
    assert source.calls == calls_before + 1  # ten notifications, one computation
    status = server.proxy_status("node-1")
    assert status is not None and status.type_status("CDS") is not None
    assert status.types[CLUSTER].state is SyncState.STALE

    # A NACK is recorded, nothing is re-sent.
    await call.write(
        discovery_pb2.DiscoveryRequest(
            type_url=CLUSTER,
            version_info=first.version_info,
            response_nonce=second.nonce,
            error_detail={"message": "no thanks"},
        )
    )
    await until(lambda: server.proxy_status("node-1").types[CLUSTER].nack is not None)  # type: ignore[union-attr]
    server.notify(["node-1"])
    await until(lambda: source.calls == calls_before + 2)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(call.read(), 0.2)
    call.cancel()


async def test_delta_stream_sends_changes_only(
    source: CountingSource,
    server: XdsServer,
    stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub,
) -> None:
    call = stub.DeltaAggregatedResources()
    node = base_pb2.Node(id="node-2")
    await call.write(discovery_pb2.DeltaDiscoveryRequest(node=node, type_url=CLUSTER))
    first = await asyncio.wait_for(call.read(), 3)
    assert [r.name for r in first.resources] == ["a"]
    await call.write(
        discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=first.nonce)
    )
    source.names = ["b"]
    server.notify(["node-2"])
    second = await asyncio.wait_for(call.read(), 3)
    # Make-before-break: "b" is added first, "a" removed once that is ACKed.
    assert [r.name for r in second.resources] == ["b"]
    assert list(second.removed_resources) == []
    await call.write(
        discovery_pb2.DeltaDiscoveryRequest(type_url=CLUSTER, response_nonce=second.nonce)
    )
    third = await asyncio.wait_for(call.read(), 3)
    assert list(third.resources) == []
    assert list(third.removed_resources) == ["a"]
    assert server.proxy_status("node-2") is not None
    assert server.proxy_status("node-2").mode == "delta"  # type: ignore[union-attr]
    call.cancel()
    await until(lambda: not server.proxy_status("node-2").connected)  # type: ignore[union-attr]


async def test_first_request_without_node_is_refused(
    stub: ads_pb2_grpc.AggregatedDiscoveryServiceStub,
) -> None:
    call = stub.StreamAggregatedResources()
    await call.write(discovery_pb2.DiscoveryRequest(type_url=CLUSTER))
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await asyncio.wait_for(call.read(), 3)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
