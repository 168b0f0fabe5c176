"""Simulated proxies: real gRPC ADS clients that subscribe, ACK and NACK as Envoy does.

Run as a worker process (`python -m bench.adsclient`): the first stdin line is a JSON
config (`xds`, `mode`, `nodes`, `nack_nodes`, optional `metadata`: node id → the node's
metadata, as Istio's agent sends it); then each `stats SINCE` line is answered with one
JSON line: per node, when the stream opened, when all four types had arrived, every
(time, type, version) received after SINCE, and `watch_hit`. A `watch TYPE HEX` line
(answered `{"watching": ...}`) makes every proxy note the first time a response of TYPE
(CDS, EDS, LDS, RDS) holds a resource whose serialized bytes contain the marker HEX:
when that proxy has a given change (it ACKs that response at once). Times are
`time.monotonic()`, which is system-wide on Linux, so the coordinator can compare them
with its own.

Like Envoy: CDS and LDS are wildcard subscriptions; EDS names are the EDS clusters of the
accepted CDS; RDS names are the route configurations the accepted listeners' HTTP
connection managers name (Ratline's sidecar: `http_proxy`; istiod's: one per port). A NACK
carries `error_detail` and, in state of the world, the last accepted version. Nodes in
`nack_nodes` reject the first route configuration they receive (the control plane must
not resend it; they accept the next one).

Like Envoy, a proxy whose stream fails or ends opens a new one after a jittered exponential
back-off (0.5 s doubling up to 30 s, reset once a stream delivered a response). A gRPC
server sheds calls it cannot hand to the application fast enough (more than 1,000 waiting:
RESOURCE_EXHAUSTED, refused at random; waiting over 30 s: CANCELLED), so at a few thousand
proxies the first attempt of some is refused: without retrying they would never connect.
The new stream starts from scratch (the proxy forgets what it had accepted), which is a
little more work for the control plane than an Envoy's reconnect.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import struct_pb2
from google.rpc import status_pb2

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
RDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
SHORT = {CDS: "CDS", EDS: "EDS", LDS: "LDS", RDS: "RDS"}
TYPES = {short: url for url, short in SHORT.items()}
HCM_TYPE = "type.googleapis.com/" + hcm_pb2.HttpConnectionManager.DESCRIPTOR.full_name
RETRY_INITIAL_S = 0.5
RETRY_MAX_S = 30.0
"""Envoy's xDS stream back-off (grpc_stream.h): jittered, 500 ms doubling up to 30 s."""
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 256 << 20),
    # Channels to one target otherwise share one TCP connection; each Envoy has its own.
    ("grpc.use_local_subchannel_pool", 1),
]

_eds_names_by_cds_version: dict[str, tuple[str, ...]] = {}
"""SotW CDS version → its EDS cluster names; shared by the clients of one worker."""
_route_names_by_listener: dict[bytes, tuple[str, ...]] = {}
"""A serialized listener → the route configurations it names; shared likewise."""


@dataclass
class Watch:
    """A change the coordinator waits for: a response of `type_url` holding `marker`."""

    type_url: str
    marker: bytes


_watch: Watch | None = None
"""The current watch of this worker (one at a time, set by a `watch` line)."""


def _route_names(listener_bytes: bytes) -> tuple[str, ...]:
    """The RDS route configurations one serialized Listener's HTTP connection managers name."""
    names = _route_names_by_listener.get(listener_bytes)
    if names is None:
        found = []
        listener = listener_pb2.Listener.FromString(listener_bytes)
        chains = [*listener.filter_chains]
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for f in chain.filters:
                if f.typed_config.type_url != HCM_TYPE:
                    continue
                hcm = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
                if hcm.HasField("rds"):
                    found.append(hcm.rds.route_config_name)
        names = _route_names_by_listener[listener_bytes] = tuple(sorted(set(found)))
    return names


_eds_name_by_cluster: dict[bytes, str | None] = {}
"""A serialized Cluster → its name if it is an EDS cluster, else None (parsed once per
worker: every proxy of a worker is sent the very same clusters)."""


def _eds_name(body: bytes) -> str | None:
    try:
        return _eds_name_by_cluster[body]
    except KeyError:
        cluster = cluster_pb2.Cluster.FromString(body)
        name = cluster.name if cluster.type == cluster_pb2.Cluster.EDS else None
        _eds_name_by_cluster[body] = name
        return name


def _eds_cluster_names(resources: list[Any]) -> list[str]:
    return [n for n in (_eds_name(packed.value) for packed in resources) if n is not None]


@dataclass
class ClientRecord:
    node_id: str
    started_at: float = 0.0
    synced_at: float | None = None
    events: list[tuple[float, str, str]] = field(default_factory=list)
    """(monotonic time, short type, version) of every response received."""
    nacks_sent: int = 0
    watch_hit: float | None = None
    """When a response first held the current watch's marker."""
    held: dict[str, int] = field(default_factory=dict)
    """Short type → how many resources of it the proxy holds now."""
    bytes_received: int = 0
    """Serialized bytes of every resource received (all streams)."""
    error: str | None = None
    """A failure of the simulated proxy itself (a bug); it stops. Stream failures retry."""
    reconnects: int = 0
    """Streams that failed or ended and were opened again."""
    last_stream_error: str | None = None
    live: bool = False
    """The current stream has delivered a response and has not ended."""

    def seen_types(self) -> set[str]:
        return {e[1] for e in self.events}


class SimulatedProxy:
    """One ADS stream behaving like an Envoy sidecar."""

    def __init__(self, channel: grpc.aio.Channel, node_id: str, mode: str, nack_first_rds: bool,
                 metadata: dict[str, Any] | None = None):
        self.stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self.node = base_pb2.Node(id=node_id, cluster=node_id.split("~")[2].split(".")[0])
        if metadata:
            struct = struct_pb2.Struct()
            struct.update(metadata)
            self.node.metadata.CopyFrom(struct)
        self.mode = mode
        self.nack_first_rds = nack_first_rds
        self.record = ClientRecord(node_id)
        self.synced = asyncio.Event()
        self._new_stream_state()

    def _new_stream_state(self) -> None:
        """Forget everything about the previous stream: the next one starts from scratch."""
        self._out: asyncio.Queue[Any] = asyncio.Queue()
        self._first = True
        self._accepted: dict[str, str] = {}
        self._subscribed: dict[str, tuple[str, ...]] = {CDS: (), LDS: ()}
        self._nonces: dict[str, str] = {}
        self._known: dict[str, dict[str, str]] = {}
        self._listeners: dict[str, bytes] = {}
        """Delta: the accepted listeners, serialized (for the route names they hold)."""

    def _send(self, message: Any) -> None:
        if self._first:
            message.node.CopyFrom(self.node)
            self._first = False
        self._out.put_nowait(message)

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            yield await self._out.get()

    def _note(self, type_url: str, version: str, bodies: list[bytes]) -> None:
        now = time.monotonic()
        self.record.live = True
        self.record.events.append((now, SHORT.get(type_url, type_url), version))
        self.record.bytes_received += sum(map(len, bodies))
        watch = _watch
        if (watch is not None and self.record.watch_hit is None and type_url == watch.type_url
                and any(watch.marker in body for body in bodies)):
            self.record.watch_hit = now
        if self.record.synced_at is None and len(self.record.seen_types()) == 4:
            self.record.synced_at = now
            self.synced.set()

    def _reject(self, type_url: str) -> bool:
        if type_url == RDS and self.nack_first_rds:
            self.nack_first_rds = False
            self.record.nacks_sent += 1
            return True
        return False

    async def run(self) -> None:
        """Keep a stream open: open it, follow it, and after a failure back off and retry."""
        self.record.started_at = time.monotonic()
        failures = 0
        while True:
            self._new_stream_state()
            try:
                if self.mode == "delta":
                    await self._run_delta()
                else:
                    await self._run_sotw()
                ended = "the control plane ended the stream"
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                ended = f"{exc.code().name}: {exc.details()}"
            except Exception as exc:
                self.record.error = repr(exc)[:300]
                return
            failures = 0 if self.record.live else failures + 1
            self.record.live = False
            self.record.reconnects += 1
            self.record.last_stream_error = ended[:300]
            delay = min(RETRY_MAX_S, RETRY_INITIAL_S * 2 ** max(0, failures - 1))
            await asyncio.sleep(random.uniform(0, delay))

    # ---- state of the world --------------------------------------------------------------

    def _sotw_request(self, type_url: str, nack: str | None = None) -> None:
        request = discovery_pb2.DiscoveryRequest(
            type_url=type_url,
            version_info=self._accepted.get(type_url, ""),
            response_nonce=self._nonces.get(type_url, ""),
            resource_names=list(self._subscribed.get(type_url, ())),
        )
        if nack is not None:
            request.error_detail.CopyFrom(status_pb2.Status(code=3, message=nack))
        self._send(request)

    async def _run_sotw(self) -> None:
        self._sotw_request(CDS)
        self._sotw_request(LDS)
        async for response in self.stub.StreamAggregatedResources(self._requests()):
            type_url = response.type_url
            self._note(type_url, response.version_info, [r.value for r in response.resources])
            self._nonces[type_url] = response.nonce
            if self._reject(type_url):
                self._sotw_request(type_url, nack="bench: simulated rejection")
                continue
            self._accepted[type_url] = response.version_info
            self.record.held[SHORT.get(type_url, type_url)] = len(response.resources)
            self._sotw_request(type_url)
            if type_url == CDS:
                names = _eds_names_by_cds_version.get(response.version_info)
                if names is None:
                    names = tuple(sorted(_eds_cluster_names(list(response.resources))))
                    _eds_names_by_cds_version[response.version_info] = names
                if names != self._subscribed.get(EDS):
                    self._subscribed[EDS] = names
                    self._sotw_request(EDS)
            elif type_url == LDS:
                routes = tuple(sorted({n for r in response.resources
                                       for n in _route_names(r.value)}))
                if routes != self._subscribed.get(RDS):
                    self._subscribed[RDS] = routes
                    self._sotw_request(RDS)

    # ---- delta ---------------------------------------------------------------------------

    async def _run_delta(self) -> None:
        self._send(discovery_pb2.DeltaDiscoveryRequest(type_url=CDS))
        self._send(discovery_pb2.DeltaDiscoveryRequest(type_url=LDS))
        async for response in self.stub.DeltaAggregatedResources(self._requests()):
            type_url = response.type_url
            self._note(type_url, response.system_version_info,
                       [r.resource.value for r in response.resources])
            ack = discovery_pb2.DeltaDiscoveryRequest(
                type_url=type_url, response_nonce=response.nonce
            )
            if self._reject(type_url):
                ack.error_detail.CopyFrom(status_pb2.Status(code=3, message="bench: rejected"))
                self._send(ack)
                continue
            self._send(ack)
            known = self._known.setdefault(type_url, {})
            for removed in response.removed_resources:
                known.pop(removed, None)
            for resource in response.resources:
                known[resource.name] = resource.version
            self.record.held[SHORT.get(type_url, type_url)] = len(known)
            if type_url == CDS:
                new_eds = [r.name for r in response.resources
                           if _eds_name(r.resource.value) is not None]
                if new_eds or response.removed_resources:
                    self._send(discovery_pb2.DeltaDiscoveryRequest(
                        type_url=EDS,
                        resource_names_subscribe=new_eds,
                        resource_names_unsubscribe=list(response.removed_resources),
                    ))
            elif type_url == LDS:
                listeners = self._listeners
                for removed in response.removed_resources:
                    listeners.pop(removed, None)
                for resource in response.resources:
                    listeners[resource.name] = resource.resource.value
                routes = {n for body in listeners.values() for n in _route_names(body)}
                old = set(self._subscribed.get(RDS, ()))
                if routes != old:
                    self._subscribed[RDS] = tuple(sorted(routes))
                    self._send(discovery_pb2.DeltaDiscoveryRequest(
                        type_url=RDS, resource_names_subscribe=sorted(routes - old),
                        resource_names_unsubscribe=sorted(old - routes),
                    ))


async def connect_and_sync(xds: str, node_id: str, mode: str, timeout: float) -> ClientRecord:
    """Open one stream, wait until all four types arrived, close it; returns its record."""
    async with grpc.aio.insecure_channel(xds, options=CHANNEL_OPTIONS) as channel:
        proxy = SimulatedProxy(channel, node_id, mode, nack_first_rds=False)
        task = asyncio.create_task(proxy.run())
        try:
            await asyncio.wait_for(proxy.synced.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{node_id} not synced after {timeout}s: {proxy.record}") from None
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return proxy.record


async def new_proxy_sync_times(xds: str, node_ids: list[str], mode: str,
                               timeout: float) -> list[float]:
    """Seconds from opening a stream to holding all four types, one new proxy at a time.

    Run it on the bench's one grpc.aio loop (`bench.aioloop.run`), never in an
    `asyncio.run` of its own (see `bench.aioloop`).
    """
    times = []
    for node_id in node_ids:
        record = await connect_and_sync(xds, node_id, mode, timeout)
        assert record.synced_at is not None
        times.append(record.synced_at - record.started_at)
    return times


def _stats(proxies: list[SimulatedProxy], since: float) -> dict[str, Any]:
    return {
        p.record.node_id: {
            "started_at": p.record.started_at,
            "synced_at": p.record.synced_at,
            "events": [e for e in p.record.events if e[0] >= since],
            "nacks": p.record.nacks_sent,
            "error": p.record.error,
            "reconnects": p.record.reconnects,
            "last_stream_error": p.record.last_stream_error,
            "live": p.record.live,
            "watch_hit": p.record.watch_hit,
            "held": p.record.held,
            "bytes_received": p.record.bytes_received,
        }
        for p in proxies
    }


def _set_watch(proxies: list[SimulatedProxy], arg: str) -> None:
    """`watch TYPE HEX`: from now on, note when each proxy first gets the marker."""
    global _watch
    type_short, _, marker = arg.partition(" ")
    _watch = Watch(TYPES[type_short], bytes.fromhex(marker))
    for p in proxies:
        p.record.watch_hit = None


async def _worker() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 28)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    config = json.loads(await reader.readline())
    nack_nodes = set(config.get("nack_nodes", ()))
    metadata = config.get("metadata") or {}
    per_channel = max(1, int(config.get("streams_per_channel", 1)))
    channels: list[grpc.aio.Channel] = []
    proxies: list[SimulatedProxy] = []
    tasks = []
    for index, node_id in enumerate(config["nodes"]):
        if index % per_channel == 0:
            channels.append(grpc.aio.insecure_channel(config["xds"], options=CHANNEL_OPTIONS))
        proxy = SimulatedProxy(channels[-1], node_id, config["mode"], node_id in nack_nodes,
                               metadata.get(node_id))
        proxies.append(proxy)
        tasks.append(asyncio.create_task(proxy.run()))
    print(json.dumps({"started": len(proxies)}), flush=True)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line or line == "quit":
            break
        cmd, _, arg = line.partition(" ")
        if cmd == "watch":
            _set_watch(proxies, arg)
            print(json.dumps({"watching": arg}), flush=True)
            continue
        print(json.dumps(_stats(proxies, float(arg or 0))), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()


if __name__ == "__main__":
    asyncio.run(_worker())
