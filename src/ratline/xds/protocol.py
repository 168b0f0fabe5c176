"""The sans-IO state of one ADS stream: subscriptions, ACK/NACK bookkeeping, what to send.

No gRPC and no asyncio here. A stream object is fed the client's requests
(`handle_request`) and the node's current resources (`set_resources`) and answers with the
responses to send, as plain data. `server.py` turns protos into these requests and the
responses back into protos.

Rules (xDS protocol, v3):
- ACK: the request carries the nonce of our latest response of that type and no
  error_detail. NACK: error_detail is set; version_info is what the client still runs.
- A request naming an older nonce of ours is stale (state of the world) and ignored.
- A NACK never triggers a resend: the same content would be rejected again. Content is
  sent again only when it changes (or the client changes its subscription).
- State of the world: a response carries every subscribed resource of its type (all of
  them for wildcard subscriptions), versioned by the hash of the set.
- Delta: a response carries only resources the client lacks or has at another version,
  plus `removed` names; resources a NACKed response carried are forgotten as known, so the
  next change sends them again.
- A cluster Envoy receives anew (added or changed) warms until it gets its endpoints, and
  Envoy does not ask again for endpoints it already has: whenever clusters are sent, their
  endpoints are sent right after, changed or not (as Istio does).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ratline.xds.cache import set_version
from ratline.xds.types import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    SHORT_NAMES,
    Resources,
    VersionedResource,
)

WILDCARD = "*"
WILDCARD_TYPES = frozenset({CLUSTER, LISTENER})
"""Types a client subscribes to wholesale when it names nothing (CDS, LDS)."""

Clock = Callable[[], float]


class SyncState(StrEnum):
    """Whether a proxy runs what it was last sent of one type."""

    SYNCED = "SYNCED"
    """The latest response was ACKed."""
    STALE = "STALE"
    """Sent but not yet ACKed, or NACKed."""
    NOT_SENT = "NOT SENT"
    """Nothing sent of this type on the current stream."""


@dataclass(frozen=True)
class Nack:
    """The client rejected one of our responses."""

    message: str
    """The client's error_detail message (Envoy says what was wrong)."""
    nonce: str
    """Nonce of the rejected response."""
    rejected_version: str | None
    """Version of the rejected response."""
    at: float


@dataclass(frozen=True)
class TypeStatus:
    """Where one proxy stands for one type URL."""

    type_url: str
    state: SyncState
    sent_version: str | None = None
    acked_version: str | None = None
    nack: Nack | None = None
    last_ack_at: float | None = None

    @property
    def short_name(self) -> str:
        return SHORT_NAMES.get(self.type_url, self.type_url)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "sent_version": self.sent_version,
            "acked_version": self.acked_version,
            "nack": self.nack.message if self.nack else None,
            "nack_version": self.nack.rejected_version if self.nack else None,
            "last_ack_at": self.last_ack_at,
        }


@dataclass(frozen=True)
class SotwRequest:
    """A DiscoveryRequest, as plain data."""

    type_url: str
    version_info: str = ""
    response_nonce: str = ""
    resource_names: tuple[str, ...] = ()
    error_detail: str | None = None
    """The NACK message, or None for a request or an ACK."""


@dataclass(frozen=True)
class SotwResponse:
    """A DiscoveryResponse to send."""

    type_url: str
    version: str
    nonce: str
    resources: tuple[VersionedResource, ...]


@dataclass(frozen=True)
class DeltaRequest:
    """A DeltaDiscoveryRequest, as plain data."""

    type_url: str
    subscribe: tuple[str, ...] = ()
    unsubscribe: tuple[str, ...] = ()
    initial_resource_versions: Mapping[str, str] = field(default_factory=dict)
    response_nonce: str = ""
    error_detail: str | None = None


@dataclass(frozen=True)
class DeltaResponse:
    """A DeltaDiscoveryResponse to send."""

    type_url: str
    system_version: str
    """Hash of every resource of the type the client is subscribed to (as in SotW)."""
    nonce: str
    resources: tuple[VersionedResource, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class Handled:
    """What handling one request produced."""

    responses: list[Any]
    """SotwResponse or DeltaResponse, in send order."""
    nack: Nack | None = None
    """Set when the request was a NACK (log it once)."""
    stale: bool = False
    """The request named a nonce that is no longer current; it was ignored."""


@dataclass
class Subscription:
    """Which resources of one type a client wants."""

    wildcard: bool = False
    names: set[str] = field(default_factory=set)

    def select(self, available: Mapping[str, VersionedResource]) -> dict[str, VersionedResource]:
        if self.wildcard:
            return dict(available)
        return {name: available[name] for name in self.names if name in available}

    def covers(self, name: str) -> bool:
        return self.wildcard or name in self.names

    def replace_sotw(self, type_url: str, names: Iterable[str]) -> None:
        """SotW: the request's names are the whole subscription."""
        wanted = set(names)
        self.wildcard = WILDCARD in wanted or (not wanted and type_url in WILDCARD_TYPES)
        wanted.discard(WILDCARD)
        self.names = wanted


@dataclass
class _TypeState:
    """Bookkeeping for one type URL on one stream (both flavours)."""

    type_url: str
    subscription: Subscription = field(default_factory=Subscription)
    owes_response: bool = False
    """The client asked afresh (no nonce) and has not been answered yet."""
    sent_version: str | None = None
    sent_nonce: str | None = None
    acked_version: str | None = None
    acked_nonce: str | None = None
    last_ack_at: float | None = None
    nack: Nack | None = None
    nack_horizon: int = 0
    """Delta: an ACK clears the NACK only for a response with a nonce above this."""

    def status(self) -> TypeStatus:
        if self.sent_nonce is None:
            state = SyncState.NOT_SENT
        elif self.nack is None and self.acked_nonce == self.sent_nonce:
            state = SyncState.SYNCED
        else:
            state = SyncState.STALE
        return TypeStatus(
            type_url=self.type_url,
            state=state,
            sent_version=self.sent_version,
            acked_version=self.acked_version,
            nack=self.nack,
            last_ack_at=self.last_ack_at,
        )


def push_ordered(type_urls: Iterable[str]) -> list[str]:
    """Type URLs in the order Envoy wants them (CDS, EDS, SDS, LDS, RDS), others last."""
    rank = {t: i for i, t in enumerate(PUSH_ORDER)}
    return sorted(type_urls, key=lambda t: (rank.get(t, len(rank)), t))


class _StreamBase:
    """What both flavours share: the node's resources, nonces, per-type states."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._resources: Resources | None = None
        self._types: dict[str, _TypeState] = {}
        self._nonces = itertools.count(1)
        self._last_nonce = 0

    @property
    def resources_known(self) -> bool:
        """Whether the config source knows this node yet."""
        return self._resources is not None

    def status(self) -> dict[str, TypeStatus]:
        """Per requested type URL, in push order."""
        return {t: self._types[t].status() for t in push_ordered(self._types)}

    def _next_nonce(self) -> str:
        self._last_nonce = next(self._nonces)
        return str(self._last_nonce)

    def _available(self, type_url: str) -> Mapping[str, VersionedResource]:
        assert self._resources is not None
        return self._resources.get(type_url, {})

    def _record_ack(self, state: _TypeState, nonce: str, version: str | None) -> None:
        state.acked_version = version
        state.acked_nonce = nonce
        state.last_ack_at = self._clock()


class SotwStream(_StreamBase):
    """State-of-the-world ADS: a CDS or LDS response holds the whole set of its type; an
    EDS, RDS or SDS response the whole subscribed set when asked afresh, else what changed.
    """

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._sent_content: dict[str, dict[str, str]] = {}

    def handle_request(self, request: SotwRequest) -> Handled:
        state = self._types.get(request.type_url)
        if state is None:
            state = self._types[request.type_url] = _TypeState(request.type_url)
        nack: Nack | None = None
        if request.response_nonce:
            if request.response_nonce != state.sent_nonce:
                return Handled([], stale=True)
            if request.error_detail is not None:
                nack = state.nack = Nack(
                    message=request.error_detail,
                    nonce=request.response_nonce,
                    rejected_version=state.sent_version,
                    at=self._clock(),
                )
                state.acked_version = request.version_info or state.acked_version
            else:
                self._record_ack(state, request.response_nonce, request.version_info)
                state.nack = None
        else:
            state.owes_response = True
        state.subscription.replace_sotw(request.type_url, request.resource_names)
        response = self._respond(state)
        return Handled([response] if response else [], nack=nack)

    def set_resources(self, resources: Resources | None) -> list[SotwResponse]:
        """The node's config changed (or became known): what to send now, in push order."""
        self._resources = resources
        responses: list[SotwResponse] = []
        for type_url in push_ordered(self._types):
            state = self._types[type_url]
            if type_url == ENDPOINT and any(r.type_url == CLUSTER for r in responses):
                state.owes_response = True  # the new clusters warm on these endpoints
            response = self._respond(state)
            if response is not None:
                responses.append(response)
        return responses

    def _respond(self, state: _TypeState) -> SotwResponse | None:
        if self._resources is None:
            return None
        selected = state.subscription.select(self._available(state.type_url))
        content = {name: r.version for name, r in selected.items()}
        previous = self._sent_content.get(state.type_url)
        if not state.owes_response and content == previous:
            return None
        if state.owes_response or previous is None or state.type_url in WILDCARD_TYPES:
            names = sorted(selected)
        else:
            # Only CDS and LDS responses must hold the whole set; for the other types a
            # resource left out keeps its last value, so send just what changed (Istio's
            # incremental EDS): one endpoint change is one assignment, not the mesh.
            names = sorted(n for n, v in content.items() if previous.get(n) != v)
            if not names:
                self._sent_content[state.type_url] = content  # only unsubscriptions
                return None
        version = set_version(content)
        nonce = self._next_nonce()
        self._sent_content[state.type_url] = content
        state.sent_version, state.sent_nonce, state.owes_response = version, nonce, False
        resources = tuple(selected[name] for name in names)
        return SotwResponse(state.type_url, version, nonce, resources)


@dataclass
class _DeltaSent:
    system_version: str
    updated: frozenset[str]


class DeltaStream(_StreamBase):
    """Incremental ADS: send only what the client lacks, remove what is gone."""

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._known: dict[str, dict[str, str]] = {}
        """type URL → name → version the client has (as far as we know)."""
        self._in_flight: dict[str, dict[str, _DeltaSent]] = {}
        """type URL → nonce → what that response carried."""

    def known(self, type_url: str) -> dict[str, str]:
        """The resources we believe the client holds (name → version); for tests and dumps."""
        return dict(self._known.get(type_url, {}))

    def handle_request(self, request: DeltaRequest) -> Handled:
        type_url = request.type_url
        state = self._types.get(type_url)
        first = state is None
        if state is None:
            state = self._types[type_url] = _TypeState(type_url)
            self._known[type_url] = dict(request.initial_resource_versions)
            self._in_flight[type_url] = {}
            if type_url in WILDCARD_TYPES and not request.subscribe:
                state.subscription.wildcard = True
        known = self._known[type_url]
        nack: Nack | None = None
        stale = False
        if request.response_nonce:
            sent = self._in_flight[type_url].pop(request.response_nonce, None)
            if sent is None:
                stale = True
            elif request.error_detail is not None:
                nack = state.nack = Nack(
                    message=request.error_detail,
                    nonce=request.response_nonce,
                    rejected_version=sent.system_version,
                    at=self._clock(),
                )
                state.nack_horizon = self._last_nonce
                for name in sent.updated:
                    known.pop(name, None)
            else:
                self._record_ack(state, request.response_nonce, sent.system_version)
                if state.nack is not None and int(request.response_nonce) > state.nack_horizon:
                    state.nack = None
        elif not first:
            state.owes_response = True
        if first:
            state.owes_response = True
        changed = self._change_subscription(state, request.subscribe, request.unsubscribe)
        response = self._respond(state) if changed or state.owes_response else None
        return Handled([response] if response else [], nack=nack, stale=stale)

    def set_resources(self, resources: Resources | None) -> list[DeltaResponse]:
        """The node's config changed (or became known): what to send now, in push order."""
        self._resources = resources
        responses: list[DeltaResponse] = []
        for type_url in push_ordered(self._types):
            if type_url == ENDPOINT:
                sent_clusters = {
                    r.name
                    for response in responses
                    if response.type_url == CLUSTER
                    for r in response.resources
                }
                known = self._known[ENDPOINT]
                for name in sent_clusters & set(known):
                    del known[name]  # resend: the new cluster warms on its endpoints
            response = self._respond(self._types[type_url])
            if response is not None:
                responses.append(response)
        return responses

    def _change_subscription(
        self, state: _TypeState, subscribe: Iterable[str], unsubscribe: Iterable[str]
    ) -> bool:
        subscription = state.subscription
        before = (subscription.wildcard, frozenset(subscription.names))
        for name in subscribe:
            if name == WILDCARD:
                subscription.wildcard = True
            else:
                subscription.names.add(name)
        for name in unsubscribe:
            if name == WILDCARD:
                subscription.wildcard = False
            else:
                subscription.names.discard(name)
        known = self._known[state.type_url]
        for name in [n for n in known if not subscription.covers(n)]:
            del known[name]  # the client drops what it unsubscribed from
        return before != (subscription.wildcard, frozenset(subscription.names))

    def _respond(self, state: _TypeState) -> DeltaResponse | None:
        if self._resources is None:
            return None
        selected = state.subscription.select(self._available(state.type_url))
        known = self._known[state.type_url]
        updated = [selected[n] for n in sorted(selected) if known.get(n) != selected[n].version]
        removed = tuple(sorted(n for n in known if n not in selected))
        if not updated and not removed and not state.owes_response:
            return None
        system_version = set_version({name: r.version for name, r in selected.items()})
        nonce = self._next_nonce()
        for resource in updated:
            known[resource.name] = resource.version
        for name in removed:
            del known[name]
        self._in_flight[state.type_url][nonce] = _DeltaSent(
            system_version, frozenset(r.name for r in updated)
        )
        state.sent_version, state.sent_nonce, state.owes_response = system_version, nonce, False
        return DeltaResponse(state.type_url, system_version, nonce, tuple(updated), removed)
