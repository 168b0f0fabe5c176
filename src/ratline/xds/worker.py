"""One xDS worker process: `python -m ratline.xds.worker FD` (started by `xds.workers`).

It runs an ordinary `XdsServer` on the control plane's xDS port, bound with SO_REUSEPORT
beside the other workers, so the kernel hands each worker a share of the proxies'
connections. Its `ConfigSource` is a `replica.Replica`, filled by the control plane over
the channel on FD (`xds.channel`): the worker translates nothing, it runs the xDS protocol
(delta and SotW state, staging, encoding, writes into gRPC) for its own streams only.

Told by the control plane: its settings (first message), then pushes (`("push",
replica messages, node ids or None)`), refusals of a node (authorization is the control
plane's), and stop. It tells the control plane: the bound port (`hello`), each proxy that
connects (with its TLS peer's SPIFFE IDs) or leaves, and every 100 ms the status of the
proxies whose stream did something plus what it sent and what was rejected (for the
control plane's metrics). Other gRPC calls on the port (the OTLP trace receiver) are
relayed as bytes to the control plane's own server for them. The worker exits when the
channel closes, so it never outlives the control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from ratline.xds.channel import Channel, ChannelClosed
from ratline.xds.replica import Replica
from ratline.xds.server import ADS_SERVICE, XdsServer

log = logging.getLogger("ratline.xds.worker")
STATUS_INTERVAL_S = 0.1
"""How often proxy status and counts go to the control plane (only when something moved)."""
RELAY_TIMEOUT_S = 30.0


class _Counts:
    """An `XdsObserver` that keeps what happened until the next status message."""

    def __init__(self) -> None:
        self.sent_events: list[tuple[str, float, float, float]] = []
        self.rejected_events: list[str] = []

    def sent(self, type_url: str, queued_s: float, push_s: float, write_s: float) -> None:
        self.sent_events.append((type_url, queued_s, push_s, write_s))

    def rejected(self, type_url: str) -> None:
        self.rejected_events.append(type_url)

    def take(self) -> tuple[list[tuple[str, float, float, float]], list[str]]:
        sent, rejected = self.sent_events, self.rejected_events
        self.sent_events, self.rejected_events = [], []
        return sent, rejected


class _Relay(grpc.GenericRpcHandler):
    """Every unary call that is not ADS, passed as bytes to the control plane's server."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.aio.insecure_channel(address)

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler | None:
        method: str = handler_call_details.method
        if method.startswith(f"/{ADS_SERVICE}/"):
            return None
        call = self._channel.unary_unary(method)

        async def relay(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                return bytes(await call(request, timeout=RELAY_TIMEOUT_S))
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), exc.details() or "")
                raise

        return grpc.unary_unary_rpc_method_handler(relay)

    async def close(self) -> None:
        await self._channel.close()


class Worker:
    """The worker's state: its server, its replica, its channel to the control plane."""

    def __init__(self, channel: Channel, config: dict[str, Any]) -> None:
        self.channel = channel
        self.config = config
        self.replica = Replica()
        self.counts = _Counts()
        self.server = XdsServer(
            self.replica,
            on_connect=self._connected,
            on_disconnect=self._disconnected,
            keep_disconnected=int(config.get("keep_disconnected", 1000)),
            nack_retry_s=float(config["nack_retry_s"]),
            nack_retry_max_s=float(config["nack_retry_max_s"]),
        )
        self.server.observer = self.counts
        self.relay: _Relay | None = None
        if config.get("relay"):
            self.relay = _Relay(config["relay"])
            self.server.extra_handlers.append(self.relay)

    def _connected(self, node_id: str) -> None:
        status = self.server.proxy_status(node_id)
        self.channel.send(("connect", node_id, self.server.peer_ids(node_id), status))

    def _disconnected(self, node_id: str) -> None:
        self.replica.drop(node_id)
        self.channel.send(("disconnect", node_id))

    def push(self, messages: list[Any], nodes: list[str] | None) -> None:
        changed = self.replica.apply(messages)
        connected = self.server.connected_nodes()
        for node_id in changed - connected:
            self.replica.drop(node_id)  # it left before the push arrived
        self.server.notify(None if nodes is None else [n for n in nodes if n in connected])

    async def report(self) -> None:
        """Every STATUS_INTERVAL_S, the status of the proxies that moved, and the counts."""
        while True:
            await asyncio.sleep(STATUS_INTERVAL_S)
            touched = self.server.drain_touched()
            sent, rejected = self.counts.take()
            if not touched and not sent and not rejected:
                continue
            statuses = [s for n in touched if (s := self.server.proxy_status(n)) is not None]
            self.channel.send(("status", statuses, sent, rejected))

    async def serve(self) -> None:
        while True:
            message = await self.channel.receive()
            kind = message[0]
            if kind == "push":
                self.push(message[1], message[2])
            elif kind == "refuse":
                self.server.refuse(message[1], message[2])
            elif kind == "stop":
                return
            else:
                log.error("unknown message from the control plane: %r", kind)


async def run(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    channel = await Channel.over(sock)
    config = await channel.receive()
    logging.getLogger().setLevel(str(config.get("log_level", "info")).upper())
    worker = Worker(channel, config)
    port = await worker.server.start(config["host"], int(config["port"]), config.get("tls"))
    channel.send(("hello", port, os.getpid()))
    reporter = asyncio.create_task(worker.report())
    try:
        await worker.serve()
    except ChannelClosed:
        log.info("the control plane closed the channel; stopping")
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        await _quietly(worker.server.stop, config.get("grace_s"))
        if worker.relay is not None:
            await _quietly(worker.relay.close)
        channel.close()


async def _quietly(step: Callable[..., Awaitable[Any]], *args: Any) -> None:
    with contextlib.suppress(Exception):
        await step(*args)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print(
            "usage: python -m ratline.xds.worker FD (started by the control plane)", file=sys.stderr
        )
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s %(name)s[worker {os.getpid()}] %(message)s",
    )
    import gc

    gc.set_threshold(50_000, 20, 100)  # as the control plane (controlplane.app.GC_THRESHOLDS)
    asyncio.run(run(int(argv[0])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
