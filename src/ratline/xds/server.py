"""The gRPC ADS server: serves a ConfigSource to Envoys, state of the world and delta.

A thin asyncio adapter around `protocol`. Each stream has its own task and queue: a reader
task feeds the client's requests into the queue, the stream task handles them one at a
time and writes the responses, so one slow proxy never holds up another. `notify` puts a
single "recompute" marker in the queues of the affected streams; markers arriving while
one is pending coalesce, so a stream computes its config at most once per burst. A
change reaches a connected proxy make-before-break (`staging`): each stage is sent once
the proxy has ACKed the previous one, or after `STAGE_ACK_TIMEOUT_S`. A push resends what
the proxy NACKed even when it did not change (its cause may be gone), and a stream whose
proxy NACKed pushes to itself after `protocol.nack_retry_delay`, so a rejection whose
cause goes away heals without any other change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import grpc
from envoy.service.discovery.v3 import discovery_pb2

from ratline.xds import wire
from ratline.xds.delta import DeltaStream
from ratline.xds.protocol import SyncState, TypeStatus, nack_retry_delay
from ratline.xds.sotw import SotwStream
from ratline.xds.staging import Config, as_config, push_stages
from ratline.xds.types import SHORT_NAMES, ConfigSource, Resources, ServerTls

log = logging.getLogger("ratline.xds")

XdsMode = Literal["sotw", "delta"]
NodeCallback = Callable[[str], None]
STAGE_ACK_TIMEOUT_S = 5.0
"""Longest a push stage waits for the proxy's ACKs before the next stage is sent."""
GRPC_SERVER_OPTIONS = [
    ("grpc.server.max_pending_requests", 10_000),
    ("grpc.server.max_pending_requests_hard_limit", 10_000),
    ("grpc.server_max_unrequested_time_in_server", 300),
]
"""grpc.aio hands new calls to Python one per turn of the event loop; the calls waiting
for that are refused at random past 1,000 (all past 3,000) and killed after 30 s by
default, so a thousand proxies connecting at once during a busy push were turned away
(they retry, with Envoy's back-off). Let a burst wait instead."""
NACK_RETRY_S = 1.0
NACK_RETRY_MAX_S = 30.0
"""Defaults of the delays before a stream resends after NACKs in a row (doubling)."""
MAX_QUEUED_REQUESTS = 64
"""Requests read from one stream but not yet handled; past this the reader stops reading,
so a proxy that floods requests is held back by gRPC flow control, not by our memory."""


@dataclass(frozen=True)
class ProxyStatus:
    """What one proxy has been sent and has accepted, per type URL."""

    node_id: str
    connected: bool
    mode: XdsMode
    snapshot_version: str | None
    """Version the ConfigSource gave with the resources last computed for this proxy."""
    connected_at: float
    disconnected_at: float | None = None
    types: Mapping[str, TypeStatus] = field(default_factory=dict)
    """type URL → status, for every type the proxy asked for, in push order."""
    peer: str = ""

    @property
    def synced(self) -> bool:
        """Every requested type ACKed at its latest version."""
        return bool(self.types) and all(t.state is SyncState.SYNCED for t in self.types.values())

    def type_status(self, short_name: str) -> TypeStatus | None:
        """Status by short name (CDS, EDS, LDS, RDS, SDS)."""
        for type_url, status in self.types.items():
            if SHORT_NAMES.get(type_url) == short_name:
                return status
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "connected": self.connected,
            "xds": self.mode,
            "snapshot_version": self.snapshot_version,
            "connected_at": self.connected_at,
            "disconnected_at": self.disconnected_at,
            "types": {status.short_name: status.to_json() for status in self.types.values()},
        }


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_RECOMPUTE = _Marker("RECOMPUTE")
_CLOSED = _Marker("CLOSED")


class _Refusal:
    def __init__(self, message: str) -> None:
        self.message = message


class XdsObserver(Protocol):
    """Told what the server does, for the control plane's metrics (pilot_xds_*)."""

    def sent(self, type_url: str, queued_s: float, push_s: float, write_s: float) -> None:
        """A response went out `queued_s` after its push was asked for (0 for one that
        answers a request), computed in `push_s` and written in `write_s`."""

    def rejected(self, type_url: str) -> None:
        """A proxy NACKed a response of this type."""


class _Connection:
    """One ADS stream: its protocol state, its queue, who is on the other end."""

    def __init__(self, mode: XdsMode, peer: str) -> None:
        self.mode: XdsMode = mode
        self.protocol: SotwStream | DeltaStream = SotwStream() if mode == "sotw" else DeltaStream()
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.request_slots = asyncio.Semaphore(MAX_QUEUED_REQUESTS)
        """Bounds the requests in `queue` (markers are coalesced and need no slot)."""
        self.node_id: str | None = None
        self.peer = peer
        self.peer_ids: tuple[str, ...] = ()
        """The SPIFFE IDs of the client's TLS certificate (none over plain text)."""
        self.connected_at = time.time()
        self.snapshot_version: str | None = None
        self.current: Resources | None = None
        """The config last handed to `protocol` (a push stage while one is under way)."""
        self.stages: list[Config] = []
        """Push stages still to send, each after the proxy ACKed the one before."""
        self.stage_sent_at = 0.0
        self._recompute_queued = False
        self.recompute_asked_at = 0.0
        self.nacks_in_a_row = 0
        self.nack_retry: asyncio.TimerHandle | None = None
        """The pending self-push after a NACK, if any."""

    def request_recompute(self) -> None:
        if not self._recompute_queued:
            self._recompute_queued = True
            self.recompute_asked_at = time.perf_counter()
            self.queue.put_nowait(_RECOMPUTE)

    def take_recompute(self) -> None:
        self._recompute_queued = False

    def stage_wait_s(self) -> float | None:
        """How long to wait for ACKs before sending the next stage; None: no stage waits."""
        if not self.stages:
            return None
        return max(0.0, self.stage_sent_at + STAGE_ACK_TIMEOUT_S - time.monotonic())

    def stage_acked(self) -> bool:
        """Every type the proxy follows is ACKed (or NACKed) at what was last sent."""
        return all(
            status.state is not SyncState.STALE or status.nack is not None
            for status in self.protocol.status().values()
        )

    def begin_push(self, resources: Resources | None) -> list[Any]:
        """Start moving the proxy to `resources`; the first stage's responses."""
        if resources is None:
            self.stages = []
            self.current = None
            return list(self.protocol.set_resources(None))
        self.stages = push_stages(self.current, resources)
        if not self.stages and self.protocol.nacked():
            self.stages = [as_config(resources)]  # unchanged, but resent: it was NACKed
        return self.next_stage()

    def after_request(self, nacked: bool, retry_s: float, retry_max_s: float) -> None:
        """After a NACK, push to this proxy again later (sooner the first times); once
        nothing is NACKed any more, stop."""
        if nacked:
            self.nacks_in_a_row += 1
            if self.nack_retry is not None:
                self.nack_retry.cancel()
            delay = nack_retry_delay(self.nacks_in_a_row, retry_s, retry_max_s)
            loop = asyncio.get_running_loop()
            self.nack_retry = loop.call_later(delay, self.request_recompute)
        elif self.nacks_in_a_row and not self.protocol.nacked():
            self.nacks_in_a_row = 0
            self.cancel_nack_retry()

    def cancel_nack_retry(self) -> None:
        if self.nack_retry is not None:
            self.nack_retry.cancel()
            self.nack_retry = None

    def next_stage(self) -> list[Any]:
        """Send pending stages until one produces responses (to wait for) or none is left."""
        while self.stages:
            stage = self.stages.pop(0)
            self.current = stage
            self.stage_sent_at = time.monotonic()
            responses: list[Any] = list(self.protocol.set_resources(stage))
            if responses:
                return responses
        return []

    def status(self, connected: bool, disconnected_at: float | None = None) -> ProxyStatus:
        return ProxyStatus(
            node_id=self.node_id or "",
            connected=connected,
            mode=self.mode,
            snapshot_version=self.snapshot_version,
            connected_at=self.connected_at,
            disconnected_at=disconnected_at,
            types=self.protocol.status(),
            peer=self.peer,
        )


class XdsServer:
    """Serves `source.resources_for(node)` over ADS (both flavours) on one gRPC port."""

    def __init__(
        self,
        source: ConfigSource,
        *,
        on_connect: NodeCallback | None = None,
        on_disconnect: NodeCallback | None = None,
        keep_disconnected: int = 1000,
        nack_retry_s: float = NACK_RETRY_S,
        nack_retry_max_s: float = NACK_RETRY_MAX_S,
    ) -> None:
        self._source = source
        self._nack_retry = (nack_retry_s, nack_retry_max_s)
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._keep_disconnected = keep_disconnected
        self._grpc: grpc.aio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._connections: dict[str, list[_Connection]] = {}
        """node id → its open streams, oldest first (a reconnect may overlap the old one)."""
        self._departed: OrderedDict[str, ProxyStatus] = OrderedDict()
        self._touched: set[str] = set()
        """Nodes whose status may have changed since `drain_touched` last ran."""
        self.port: int | None = None
        self.observer: XdsObserver | None = None
        self.extra_handlers: list[grpc.GenericRpcHandler] = []
        """More gRPC services on the xDS port (the OTLP trace receiver), set before start."""
        self.authorize: Callable[[str, tuple[str, ...]], str | None] | None = None
        """Checks a new stream's node id against its TLS peer's SPIFFE IDs; a returned
        message refuses the stream (PERMISSION_DENIED). None: every node is accepted."""

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: grpc.ServerCredentials | ServerTls | None = None,
    ) -> int:
        """Listen on host:port (0 picks a free port), over TLS with `credentials`.

        The port is bound with SO_REUSEPORT (gRPC's default on Linux), so several worker
        processes can share it (`xds.workers`)."""
        if isinstance(credentials, ServerTls):
            credentials = credentials.credentials()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        server = grpc.aio.server(options=GRPC_SERVER_OPTIONS)
        server.add_generic_rpc_handlers((_ads_handler(self), *self.extra_handlers))
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if credentials is not None:
            bound = server.add_secure_port(address, credentials)
        else:
            bound = server.add_insecure_port(address)
        if bound == 0:
            raise OSError(f"xDS server could not bind {address}")
        await server.start()
        self._grpc, self.port = server, bound
        log.info("xDS server listening on %s:%d", host, bound)
        return bound

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving; open streams are cancelled (after `grace` seconds if given)."""
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None

    def notify(self, node_ids: Iterable[str] | None = None) -> None:
        """Recompute and push the config of these nodes (None: every connected proxy).

        Safe to call from any thread. Nodes that are not connected are ignored.
        """
        wanted = None if node_ids is None else set(node_ids)
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self._notify, wanted)
        else:
            self._notify(wanted)

    def _notify(self, wanted: set[str] | None) -> None:
        for node_id, connections in self._connections.items():
            if wanted is None or node_id in wanted:
                for connection in connections:
                    connection.request_recompute()

    def refuse(self, node_id: str, message: str) -> None:
        """End every stream of this node with PERMISSION_DENIED (from any thread)."""
        loop = self._loop
        if loop is not None and threading.get_ident() != self._loop_thread:
            loop.call_soon_threadsafe(self.refuse, node_id, message)
            return
        for connection in self._connections.get(node_id, ()):
            connection.queue.put_nowait(_Refusal(message))

    def peer_ids(self, node_id: str) -> tuple[str, ...]:
        """The SPIFFE IDs the node's newest stream presented (none over plain text)."""
        connections = self._connections.get(node_id)
        return connections[-1].peer_ids if connections else ()

    def drain_touched(self) -> set[str]:
        """The nodes whose stream did something since the last call (for status copies)."""
        touched, self._touched = self._touched, set()
        return touched

    def status(self) -> list[ProxyStatus]:
        """Every connected proxy (its newest stream), then recently disconnected ones."""
        statuses = [conns[-1].status(connected=True) for conns in self._connections.values()]
        statuses.sort(key=lambda s: s.node_id)
        departed = [s for n, s in self._departed.items() if n not in self._connections]
        return statuses + sorted(departed, key=lambda s: s.node_id)

    def proxy_status(self, node_id: str) -> ProxyStatus | None:
        """One proxy's status (connected or recently disconnected), or None."""
        connections = self._connections.get(node_id)
        if connections:
            return connections[-1].status(connected=True)
        return self._departed.get(node_id)

    def connected_nodes(self) -> set[str]:
        return set(self._connections)

    # --- one stream -------------------------------------------------------------------

    async def serve_stream(
        self, mode: XdsMode, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> None:
        """Run one ADS stream until the client goes away or the server stops."""
        connection = _Connection(mode, context.peer())
        reader = asyncio.create_task(self._read(connection, requests))
        getter: asyncio.Future[object] | None = None
        asked_at = push_started = 0.0
        try:
            while True:
                wait_s = connection.stage_wait_s()
                if getter is None and (wait_s is None or not connection.queue.empty()):
                    item: object = await connection.queue.get()  # no timer: the fast path
                else:
                    if getter is None:
                        getter = asyncio.ensure_future(connection.queue.get())
                    await asyncio.wait({getter}, timeout=wait_s)
                    if getter.done():
                        item, getter = getter.result(), None
                    else:
                        item = None
                if item is None:
                    # The proxy did not ACK the last stage in time: send the next anyway.
                    responses: list[Any] = connection.next_stage()
                if item is _CLOSED:
                    return
                if isinstance(item, _Refusal):
                    log.warning("xDS stream of %s refused: %s", connection.node_id, item.message)
                    await context.abort(grpc.StatusCode.PERMISSION_DENIED, item.message)
                if item is None:
                    pass  # responses: the next stage's, above
                elif item is _RECOMPUTE:
                    connection.take_recompute()
                    asked_at, push_started = connection.recompute_asked_at, time.perf_counter()
                    responses = connection.begin_push(self._compute(connection))
                else:
                    connection.request_slots.release()
                    if connection.node_id is None and self.authorize is not None:
                        refusal = self.authorize(_node_of(item), _peer_ids(context))
                        if refusal is not None:
                            log.warning("xDS stream from %s refused: %s", context.peer(), refusal)
                            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
                    if connection.node_id is None:
                        connection.peer_ids = _peer_ids(context)
                    if connection.node_id is None and not self._attach(connection, item):
                        await context.abort(
                            grpc.StatusCode.INVALID_ARGUMENT, "the first request must name a node"
                        )
                    responses = self._handle(connection, item)
                    if connection.stages and connection.stage_acked():
                        responses += connection.next_stage()
                if connection.node_id is not None:
                    self._touched.add(connection.node_id)
                pushed_at = time.perf_counter()
                for response in responses:
                    if mode == "sotw":
                        await context.write(wire.sotw_response_bytes(response))
                    else:
                        await context.write(wire.delta_response_bytes(response))
                    if self.observer is not None:
                        done = time.perf_counter()
                        from_push = item is _RECOMPUTE
                        self.observer.sent(
                            response.type_url,
                            done - asked_at if from_push else 0.0,
                            pushed_at - push_started if from_push else 0.0,
                            done - pushed_at,
                        )
        finally:
            if getter is not None:
                getter.cancel()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self._detach(connection)

    async def _read(self, connection: _Connection, requests: AsyncIterator[Any]) -> None:
        try:
            async for request in requests:
                await connection.request_slots.acquire()
                connection.queue.put_nowait(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the client went away mid-read
            log.debug("xDS stream from %s ended: %r", connection.peer, exc)
        finally:
            connection.queue.put_nowait(_CLOSED)

    def _attach(self, connection: _Connection, first_request: Any) -> bool:
        node_id = _message(first_request).node.id
        if not node_id:
            return False
        connection.node_id = node_id
        self._connections.setdefault(node_id, []).append(connection)
        self._departed.pop(node_id, None)
        log.info("proxy %s connected (%s xDS, %s)", node_id, connection.mode, connection.peer)
        connection.current = self._compute(connection)
        connection.protocol.set_resources(connection.current)
        if self._on_connect is not None:
            try:
                self._on_connect(node_id)
            except Exception:
                log.exception("on_connect callback failed for %s", node_id)
        return True

    def _detach(self, connection: _Connection) -> None:
        connection.cancel_nack_retry()
        node_id = connection.node_id
        if node_id is None:
            return
        self._touched.add(node_id)
        connections = self._connections.get(node_id, [])
        if connection in connections:
            connections.remove(connection)
        if connections:
            return
        self._connections.pop(node_id, None)
        self._departed[node_id] = connection.status(connected=False, disconnected_at=time.time())
        self._departed.move_to_end(node_id)
        while len(self._departed) > self._keep_disconnected:
            self._departed.popitem(last=False)
        log.info("proxy %s disconnected", node_id)
        if self._on_disconnect is not None:
            try:
                self._on_disconnect(node_id)
            except Exception:
                log.exception("on_disconnect callback failed for %s", node_id)

    def _compute(self, connection: _Connection) -> Resources | None:
        assert connection.node_id is not None
        try:
            found = self._source.resources_for(connection.node_id)
        except Exception:
            log.exception(
                "computing the config of %s failed; keeping what it has", connection.node_id
            )
            return None
        if found is None:
            log.debug("proxy %s is not known (yet); sending nothing", connection.node_id)
            return None
        connection.snapshot_version, resources = found
        return resources

    def _handle(self, connection: _Connection, request: Any) -> list[Any]:
        protocol = connection.protocol
        if isinstance(protocol, SotwStream):
            handled = protocol.handle_request(wire.sotw_request(request))
        else:
            handled = protocol.handle_request(wire.delta_request(request))
        connection.after_request(handled.nack is not None, *self._nack_retry)
        if handled.nack is not None:
            nack = handled.nack
            if self.observer is not None:
                self.observer.rejected(_message(request).type_url)
            log.warning(
                "proxy %s rejected %s version %s: %s",
                connection.node_id,
                SHORT_NAMES.get(_message(request).type_url, "?"),
                nack.rejected_version,
                nack.message,
            )
        return handled.responses


def _node_of(request: Any) -> str:
    node = getattr(_message(request), "node", None)
    return str(getattr(node, "id", "") or "")


def _message(item: Any) -> Any:
    """The request proto of a received item (state-of-the-world items carry their bytes)."""
    return item.message if isinstance(item, wire.ReceivedSotw) else item


def _peer_ids(context: grpc.aio.ServicerContext) -> tuple[str, ...]:
    """The SPIFFE IDs of the stream's TLS client certificate (none over plain text)."""
    auth = context.auth_context() or {}
    values = auth.get("peer_spiffe_id") or [
        v for v in auth.get("x509_subject_alternative_name") or () if v.startswith(b"spiffe://")
    ]
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


ADS_SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def _already_encoded(response: bytes) -> bytes:
    return response


def _ads_handler(server: XdsServer) -> grpc.GenericRpcHandler:
    """The ADS service, writing responses `wire` already encoded."""

    async def sotw(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        await server.serve_stream("sotw", requests, context)

    async def delta(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> None:
        await server.serve_stream("delta", requests, context)

    return grpc.method_handlers_generic_handler(
        ADS_SERVICE,
        {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                sotw,
                request_deserializer=wire.ReceivedSotw.parse,
                response_serializer=_already_encoded,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                delta,
                request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
                response_serializer=_already_encoded,
            ),
        },
    )
