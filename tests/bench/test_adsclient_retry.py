"""A simulated proxy whose stream is refused opens a new one, as Envoy does.

A real grpc.aio ADS server refuses the first stream of every node (as gRPC core does to
calls it sheds under load), then answers each request with an empty response of its type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

from bench import adsclient

NODE = "sidecar~127.0.0.1~svc-00000-0.default~default.svc.cluster.local"


class RefuseFirstStream(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.streams = 0

    async def StreamAggregatedResources(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        self.streams += 1
        if self.streams == 1:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "shed")
        answered: set[str] = set()
        async for request in requests:
            if request.type_url not in answered:
                answered.add(request.type_url)
                yield discovery_pb2.DiscoveryResponse(
                    type_url=request.type_url, version_info="v1", nonce=f"n{len(answered)}"
                )


async def test_refused_stream_is_retried_until_synced(monkeypatch: Any) -> None:
    monkeypatch.setattr(adsclient, "RETRY_INITIAL_S", 0.05)
    servicer = RefuseFirstStream()
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        record = await adsclient.connect_and_sync(f"127.0.0.1:{port}", NODE, "sotw", 10)
    finally:
        await server.stop(None)
    assert servicer.streams == 2
    assert record.reconnects == 1
    assert record.last_stream_error is not None
    # The grpc.aio client reports the server's status, or INTERNAL when its pending send
    # of the next request fails first (a race inside grpc.aio).
    assert record.last_stream_error.split(":")[0] in ("RESOURCE_EXHAUSTED", "INTERNAL")
    assert record.error is None
    assert record.seen_types() == {"CDS", "EDS", "LDS", "RDS"}

