"""`XdsWorkerPool`: the xDS server as several processes, one per core.

Python runs one process on one core at a time, and at a few thousand proxies most of a
push is per stream (the delta or SotW state, staging, encoding, the write into gRPC).
The pool has the surface of `server.XdsServer` (start, stop, notify, status,
proxy_status, connected_nodes, observer, extra_handlers, authorize) but serves no stream
itself: it starts N worker processes (`python -m ratline.xds.worker`) that bind the same
port with SO_REUSEPORT, so the kernel spreads the proxies' connections over them, and it
publishes to each worker the resources of the proxies connected to it
(`replica.Publisher`: each resource and shared set once, then per proxy only numbers).

Flow: a proxy connects to a worker → the worker reports it (node id, TLS peer IDs) → the
pool checks `authorize` (a refusal ends the stream), asks the `ConfigSource` for the node's
resources, publishes them and tells the worker to push. `notify` (a new snapshot) does the
same for every affected node of every worker, in one message per worker. The workers send
back, every 100 ms, the status of the proxies that moved and what they sent, so `status()`
lags a stream by at most that much. gRPC calls on the xDS port other than ADS (the OTLP
trace receiver in `extra_handlers`) are relayed by the workers to a server of the pool's
own on a private Unix socket. A worker that dies is started again; its proxies reconnect
(Envoy retries) to the others or to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import grpc

from ratline.xds.channel import Channel, ChannelClosed
from ratline.xds.replica import Message, Publisher
from ratline.xds.server import GRPC_SERVER_OPTIONS, NodeCallback, ProxyStatus, XdsObserver
from ratline.xds.types import ConfigSource, ServerTls

log = logging.getLogger("ratline.xds")
START_TIMEOUT_S = 60.0
"""Longest a worker may take to import, bind and say hello."""
STOP_TIMEOUT_S = 10.0
RESTART_DELAY_S = 1.0


class _Worker:
    """One worker process as the pool sees it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.publisher = Publisher()
        self.nodes: set[str] = set()
        """Proxies with a stream on this worker."""
        self.statuses: dict[str, ProxyStatus] = {}
        self.reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class XdsWorkerPool:
    """Serves `source.resources_for(node)` over ADS from `workers` processes on one port."""

    def __init__(
        self,
        source: ConfigSource,
        *,
        workers: int,
        on_connect: NodeCallback | None = None,
        on_disconnect: NodeCallback | None = None,
        keep_disconnected: int = 1000,
        nack_retry_s: float = 1.0,
        nack_retry_max_s: float = 30.0,
        log_level: str = "info",
    ) -> None:
        if workers < 1:
            raise ValueError(f"xds_workers must be at least 1, not {workers}")
        self._source = source
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._keep_disconnected = keep_disconnected
        self._worker_config: dict[str, Any] = {
            "nack_retry_s": nack_retry_s,
            "nack_retry_max_s": nack_retry_max_s,
            "keep_disconnected": keep_disconnected,
            "log_level": log_level,
        }
        self._workers = [_Worker(i) for i in range(workers)]
        self._departed: OrderedDict[str, ProxyStatus] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._relay: grpc.aio.Server | None = None
        self._relay_dir: tempfile.TemporaryDirectory[str] | None = None
        self._stopping = False
        self.port: int | None = None
        self.observer: XdsObserver | None = None
        self.extra_handlers: list[grpc.GenericRpcHandler] = []
        """More gRPC services on the xDS port (relayed by the workers), set before start."""
        self.authorize: Any = None
        """As `XdsServer.authorize`; checked here when a worker reports a new stream."""

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.pid is not None]

    # ---- lifecycle ----------------------------------------------------------------------

    async def start(
        self, host: str = "127.0.0.1", port: int = 0, credentials: ServerTls | None = None
    ) -> int:
        """Start the workers on host:port (0: the first picks a free port, the others
        join it), over mTLS with `credentials`; the bound port."""
        if credentials is not None and not isinstance(credentials, ServerTls):
            raise TypeError(
                "xDS workers need the TLS material as ServerTls (PEM), not grpc.ServerCredentials"
            )
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        relay = await self._start_relay() if self.extra_handlers else ""
        self._worker_config.update(host=host, tls=credentials, relay=relay, port=port)
        try:
            first = self._workers[0]
            bound = await self._spawn(first)
            self._worker_config["port"] = bound
            await asyncio.gather(*(self._spawn(w) for w in self._workers[1:]))
        except BaseException:
            await self.stop()
            raise
        self.port = bound
        log.info(
            "xDS server listening on %s:%d (%d worker processes: %s)",
            host,
            bound,
            len(self._workers),
            ", ".join(map(str, self.worker_pids)),
        )
        return bound

    async def _start_relay(self) -> str:
        self._relay_dir = tempfile.TemporaryDirectory(prefix="ratline-xds-relay-")
        address = f"unix:{os.path.join(self._relay_dir.name, 'relay.sock')}"
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        server.add_generic_rpc_handlers(tuple(self.extra_handlers))
        if server.add_insecure_port(address) == 0:
            raise OSError(f"could not bind the xDS relay socket {address}")
        await server.start()
        self._relay = server
        return address

    async def _spawn(self, worker: _Worker) -> int:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            worker.process = subprocess.Popen(
                [sys.executable, "-m", "ratline.xds.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()
        worker.channel = await Channel.over(mine)
        worker.channel.send(self._worker_config)
        try:
            hello = await asyncio.wait_for(worker.channel.receive(), START_TIMEOUT_S)
        except (TimeoutError, ChannelClosed) as exc:
            raise OSError(
                f"xDS worker {worker.index} (pid {worker.pid}) did not start: {exc or 'timed out'}"
            ) from exc
        if hello[0] != "hello":
            raise OSError(f"xDS worker {worker.index} said {hello[0]!r} instead of hello")
        worker.reader = asyncio.create_task(self._read(worker), name=f"xds-worker-{worker.index}")
        return int(hello[1])

    async def stop(self, grace: float | None = None) -> None:
        """Stop every worker (their streams end) and the relay."""
        self._stopping = True
        for worker in self._workers:
            if worker.channel is not None:
                with contextlib.suppress(Exception):
                    worker.channel.send(("stop",))
        for worker in self._workers:
            await self._end(worker)
        if self._relay is not None:
            await self._relay.stop(grace)
            self._relay = None
        if self._relay_dir is not None:
            self._relay_dir.cleanup()
            self._relay_dir = None

    async def _end(self, worker: _Worker) -> None:
        if worker.reader is not None and worker.reader is not asyncio.current_task():
            worker.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker.reader
        worker.reader = None
        process = worker.process
        if process is not None:
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if process.poll() is None:
                process.kill()  # by its own PID
                await asyncio.to_thread(process.wait, STOP_TIMEOUT_S)
        if worker.channel is not None:
            worker.channel.close()
            worker.channel = None
        worker.process = None

    # ---- from the workers --------------------------------------------------------------

    async def _read(self, worker: _Worker) -> None:
        assert worker.channel is not None
        try:
            while True:
                message = await worker.channel.receive()
                try:
                    self._handle(worker, message)
                except Exception:
                    log.exception("handling %r from xDS worker %d failed", message[0], worker.index)
        except ChannelClosed:
            pass
        if not self._stopping:
            asyncio.get_running_loop().create_task(self._restart(worker))

    async def _restart(self, worker: _Worker) -> None:
        log.error(
            "xDS worker %d (pid %s) exited (code %s); starting it again",
            worker.index,
            worker.pid,
            worker.process.poll() if worker.process is not None else None,
        )
        for node_id in sorted(worker.nodes):
            self._left(worker, node_id)
        worker.statuses.clear()
        worker.publisher = Publisher()
        await self._end(worker)
        while not self._stopping:
            await asyncio.sleep(RESTART_DELAY_S)
            try:
                await self._spawn(worker)
                return
            except OSError:
                log.exception("restarting xDS worker %d failed", worker.index)
                await self._end(worker)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "connect":
            self._joined(worker, message[1], tuple(message[2]), message[3])
        elif kind == "disconnect":
            self._left(worker, message[1])
        elif kind == "status":
            _, statuses, sent, rejected = message
            for status in statuses:
                self._took_status(worker, status)
            if self.observer is not None:
                for event in sent:
                    self.observer.sent(*event)
                for type_url in rejected:
                    self.observer.rejected(type_url)
        else:
            log.error("unknown message from xDS worker %d: %r", worker.index, kind)

    def _joined(
        self, worker: _Worker, node_id: str, peer_ids: tuple[str, ...], status: ProxyStatus
    ) -> None:
        assert worker.channel is not None
        if self.authorize is not None:
            refusal = self.authorize(node_id, peer_ids)
            if refusal is not None:
                worker.channel.send(("refuse", node_id, refusal))
                return
        known = self._connected_anywhere(node_id)
        worker.nodes.add(node_id)
        worker.statuses[node_id] = status
        out: list[Message] = []
        try:
            found = self._resources_for(node_id)
        except Exception:
            found = None
        worker.publisher.publish(node_id, found, out)
        worker.channel.send(("push", out, [node_id]))
        if not known and self._on_connect is not None:
            try:
                self._on_connect(node_id)
            except Exception:
                log.exception("on_connect callback failed for %s", node_id)

    def _left(self, worker: _Worker, node_id: str) -> None:
        if node_id not in worker.nodes:
            return  # refused, or already gone with its worker
        worker.nodes.discard(node_id)
        worker.publisher.drop(node_id)
        status = worker.statuses.pop(node_id, None)
        if self._connected_anywhere(node_id):
            return
        if status is not None:
            self._depart(status)
        if self._on_disconnect is not None:
            try:
                self._on_disconnect(node_id)
            except Exception:
                log.exception("on_disconnect callback failed for %s", node_id)

    def _took_status(self, worker: _Worker, status: ProxyStatus) -> None:
        if status.connected and status.node_id in worker.nodes:
            worker.statuses[status.node_id] = status
        elif not status.connected:
            worker.statuses.pop(status.node_id, None)
            if not self._connected_anywhere(status.node_id):
                self._depart(status)

    def _depart(self, status: ProxyStatus) -> None:
        self._departed[status.node_id] = status
        self._departed.move_to_end(status.node_id)
        while len(self._departed) > self._keep_disconnected:
            self._departed.popitem(last=False)

    def _connected_anywhere(self, node_id: str) -> bool:
        return any(node_id in w.nodes for w in self._workers)

    def _resources_for(self, node_id: str) -> Any:
        try:
            return self._source.resources_for(node_id)
        except Exception:
            log.exception("computing the config of %s failed; keeping what it has", node_id)
            raise

    # ---- the XdsServer surface ------------------------------------------------------------

    def notify(self, node_ids: Iterable[str] | None = None) -> None:
        """Recompute and push the config of these nodes (None: every connected proxy).

        Safe to call from any thread. Nodes that are not connected are ignored."""
        wanted = None if node_ids is None else set(node_ids)
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._notify, wanted)
        else:
            self._notify(wanted)

    def _notify(self, wanted: set[str] | None) -> None:
        for worker in self._workers:
            if worker.channel is None or not worker.nodes:
                continue
            out: list[Message] = []
            everyone = worker.publisher.compact(out)
            nodes = worker.nodes if wanted is None or everyone else worker.nodes & wanted
            if not nodes:
                continue
            for node_id in sorted(nodes):
                try:
                    found = self._resources_for(node_id)
                except Exception:
                    continue
                worker.publisher.publish(node_id, found, out)
            worker.channel.send(("push", out, None if wanted is None else sorted(nodes)))

    def status(self) -> list[ProxyStatus]:
        """Every connected proxy (its newest stream), then recently disconnected ones."""
        connected: dict[str, ProxyStatus] = {}
        for worker in self._workers:
            for node_id, status in worker.statuses.items():
                if (
                    node_id not in connected
                    or status.connected_at > connected[node_id].connected_at
                ):
                    connected[node_id] = status
        statuses = sorted(connected.values(), key=lambda s: s.node_id)
        departed = [
            s
            for n, s in self._departed.items()
            if n not in connected and not self._connected_anywhere(n)
        ]
        return statuses + sorted(departed, key=lambda s: s.node_id)

    def proxy_status(self, node_id: str) -> ProxyStatus | None:
        """One proxy's status (connected or recently disconnected), or None."""
        found = [w.statuses[node_id] for w in self._workers if node_id in w.statuses]
        if found:
            return max(found, key=lambda s: s.connected_at)
        return None if self._connected_anywhere(node_id) else self._departed.get(node_id)

    def connected_nodes(self) -> set[str]:
        return set().union(*(w.nodes for w in self._workers))
