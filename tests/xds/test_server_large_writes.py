"""Large responses (a first sync) are encoded and written a few streams at a time, and a
proxy that stops reading holds a slot only for a bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from ratline.xds import CLUSTER, XdsServer, group_by_type, pack
from ratline.xds import server as server_module
from ratline.xds.server import LARGE_RESPONSE_RESOURCES
from ratline.xds.types import Resources

STREAMS = 5
SLOTS = 2


class ManyClusters:
    def __init__(self) -> None:
        self.resources = group_by_type(
            [pack(cluster_pb2.Cluster(name=f"c{i}")) for i in range(LARGE_RESPONSE_RESOURCES)]
        )

    def resources_for(self, node_id: str) -> tuple[str, Resources] | None:
        return "1", self.resources


class StuckWriter:
    """A gRPC context whose writes never complete (a proxy that stopped reading)."""

    def __init__(self, started: list[float]) -> None:
        self.started = started

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def write(self, _message: Any) -> None:
        self.started.append(time.monotonic())
        await asyncio.Event().wait()

    async def abort(self, *_args: Any) -> None:
        raise AssertionError("aborted")


async def _requests(index: int) -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
    node = base_pb2.Node(id=f"sidecar~127.0.0.1~p{index}.default~default.svc.cluster.local")
    yield discovery_pb2.DiscoveryRequest(node=node, type_url=CLUSTER)
    await asyncio.Event().wait()


async def test_large_writes_wait_for_a_slot_but_never_forever(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wait_s = 0.6
    monkeypatch.setattr(server_module, "LARGE_WRITE_WAIT_S", wait_s)
    server = XdsServer(ManyClusters(), large_writes=SLOTS)
    started: list[float] = []
    t0 = time.monotonic()
    streams = [
        asyncio.create_task(server.serve_stream("sotw", _requests(i), StuckWriter(started)))  # type: ignore[arg-type]
        for i in range(STREAMS)
    ]
    try:
        deadline = time.monotonic() + 3
        while len(started) < SLOTS:
            assert time.monotonic() < deadline, started
            await asyncio.sleep(0.01)
        await asyncio.sleep(wait_s / 3)
        assert len(started) == SLOTS  # the others wait: their slot holders never finish
        while len(started) < STREAMS:
            assert time.monotonic() < deadline, started
            await asyncio.sleep(0.01)
        assert min(started[SLOTS:]) - t0 >= wait_s * 0.9  # written after the bounded wait
    finally:
        for stream in streams:
            stream.cancel()
        for stream in streams:
            with contextlib.suppress(asyncio.CancelledError):
                await stream
