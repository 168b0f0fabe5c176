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


class Responses:
    """Reads a stream's responses in the background (cancelling a read ends the call), so
    a test can wait for the next one or check that none comes."""

    def __init__(self, call: object) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._task = asyncio.create_task(self._read(call))

    async def _read(self, call: object) -> None:
        while True:
            self._queue.put_nowait(await call.read())  # type: ignore[attr-defined]

    async def next(self, timeout_s: float = 3.0) -> object:
        return await asyncio.wait_for(self._queue.get(), timeout_s)

    async def none_for(self, seconds: float) -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(self._queue.get(), seconds)

    def close(self) -> None:
        self._task.cancel()


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

    # A NACK is recorded and answered with nothing at once (the same would be rejected).
    await call.write(
        discovery_pb2.DiscoveryRequest(
            type_url=CLUSTER,
            version_info=first.version_info,
            response_nonce=second.nonce,
            error_detail={"message": "no thanks"},
        )
    )
    await until(lambda: server.proxy_status("node-1").types[CLUSTER].nack is not None)  # type: ignore[union-attr]
    responses = Responses(call)
    await responses.none_for(0.2)
    # The next push sends it again, unchanged: its cause may have gone away (as Istio).
    server.notify(["node-1"])
    again = await responses.next()
    assert sorted(r.value for r in again.resources) == sorted(r.value for r in second.resources)
    await call.write(
        discovery_pb2.DiscoveryRequest(
            type_url=CLUSTER, version_info=again.version_info, response_nonce=again.nonce
        )
    )
    await until(lambda: server.proxy_status("node-1").synced)  # type: ignore[union-attr]
    # Once ACKed, a push without changes sends nothing.
    calls = source.calls
    server.notify(["node-1"])
    await until(lambda: source.calls == calls + 1)
    await responses.none_for(0.2)
    responses.close()
    call.cancel()


async def test_a_nacked_config_is_resent_by_the_server_itself_until_accepted(
    source: CountingSource,
) -> None:
    """No push at all: the stream resends after a NACK, with a growing delay, and stops
    once the proxy accepts."""
    server = XdsServer(source, nack_retry_s=0.05, nack_retry_max_s=0.2)
    await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
            node = base_pb2.Node(id="node-3")
            await call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER))
            responses = Responses(call)
            response = await responses.next()
            for _ in range(3):
                await call.write(
                    discovery_pb2.DiscoveryRequest(
                        type_url=CLUSTER,
                        response_nonce=response.nonce,
                        error_detail={"message": "port in use"},
                    )
                )
                resent = await responses.next()
                assert [r.value for r in resent.resources] == [
                    r.value for r in response.resources
                ]
                assert resent.nonce != response.nonce
                response = resent
            await call.write(
                discovery_pb2.DiscoveryRequest(
                    type_url=CLUSTER,
                    version_info=response.version_info,
                    response_nonce=response.nonce,
                )
            )
            await until(lambda: server.proxy_status("node-3").synced)  # type: ignore[union-attr]
            # Accepted: no more resends (several retry periods pass in silence).
            await responses.none_for(0.6)
            responses.close()
            call.cancel()
    finally:
        await server.stop()


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
