"""A proxy that floods requests cannot grow the server's per-stream queue without bound."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from ratline.xds import CLUSTER, XdsServer, group_by_type, pack
from ratline.xds.server import MAX_QUEUED_REQUESTS
from ratline.xds.types import Resources

FLOOD = 10 * MAX_QUEUED_REQUESTS


class OneCluster:
    def resources_for(self, node_id: str) -> tuple[str, Resources] | None:
        return "1", group_by_type([pack(cluster_pb2.Cluster(name="a"))])


class StuckWriter:
    """A gRPC context whose writes never complete (a proxy that stopped reading)."""

    def __init__(self) -> None:
        self.writes = 0

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}  # plain text: no TLS peer

    async def write(self, _message: Any) -> None:
        self.writes += 1
        await asyncio.Event().wait()

    async def abort(self, *_args: Any) -> None:
        raise AssertionError("aborted")


async def test_request_flood_is_bounded_by_backpressure() -> None:
    server = XdsServer(OneCluster())
    read = 0

    async def requests() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        nonlocal read
        node = base_pb2.Node(id="sidecar~127.0.0.1~flood-0.default~default.svc.cluster.local")
        for n in range(FLOOD):
            read += 1
            yield discovery_pb2.DiscoveryRequest(node=node if n == 0 else None, type_url=CLUSTER)

    context = StuckWriter()
    stream = asyncio.create_task(server.serve_stream("sotw", requests(), context))  # type: ignore[arg-type]
    deadline = time.monotonic() + 3
    while context.writes == 0 or read < MAX_QUEUED_REQUESTS:
        assert time.monotonic() < deadline, (context.writes, read)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # give the reader every chance to read past the bound
    assert read <= MAX_QUEUED_REQUESTS + 2, read
    stream.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stream
