"""The sans-IO state of one ADS stream: subscriptions, ACK/NACK bookkeeping, what to send.

No gRPC and no asyncio here; the streams are `sotw.SotwStream` and `delta.DeltaStream`,
built on `StreamBase` here. A stream object is fed the client's requests
(`handle_request`) and the node's current resources (`set_resources`) and answers with the
responses to send, as plain data. `server.py` turns protos into these requests and the
responses back into protos.

Rules (xDS protocol, v3):
- ACK: the request carries the nonce of our latest response of that type and no
  error_detail. NACK: error_detail is set; version_info is what the client still runs.
- A request naming an older nonce of ours is stale (state of the world) and ignored.
- A NACK never triggers an immediate resend: the same content would be rejected again.
  A NACKed type is sent again on the next push (`set_resources`), changed or not, as
  Istio does: what made the client reject it (a port in use, a missing secret) may have
  gone away meanwhile. `nack_retry_delay` is how long the server waits before making such
  a push itself when nothing else does.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ratline.xds.cache import set_version
from ratline.xds.resource_set import ResourceSet
from ratline.xds.types import (
    CLUSTER,
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
    resource_names: Sequence[str] = ()
    error_detail: str | None = None
    """The NACK message, or None for a request or an ACK."""
    names_key: bytes | memoryview | None = None
    """The encoded names: equal bytes, equal names (None: unknown, read the names)."""


@dataclass(frozen=True)
class SotwResponse:
    """A DiscoveryResponse to send."""

    type_url: str
    version: str
    nonce: str
    resources: tuple[VersionedResource, ...]
    complete: ResourceSet | None = None
    """Set when `resources` is exactly this whole set (the wire reuses its encoding)."""


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
    names: frozenset[str] = frozenset()
    """Replaced (never mutated) on change, and interned: proxies asking for the same names
    share one set (and its version token) instead of holding a copy each."""
    _names_key: bytes | None = None

    def select(self, available: ResourceSet) -> tuple[VersionedResource, ...]:
        """The subscribed resources of `available`, in order."""
        if self.wildcard:
            return available.ordered()
        return tuple(available[name] for name in sorted(self.names) if name in available)

    def covers(self, name: str) -> bool:
        return self.wildcard or name in self.names

    def version_of(self, available: ResourceSet) -> str:
        """The version of what this subscription selects of `available`."""
        if self.wildcard:
            return available.version
        return set_version({"\0set": available.version, "\0sub": _names_token(self.names)})

    def replace_sotw(
        self, type_url: str, names: Iterable[str], names_key: bytes | memoryview | None = None
    ) -> bool:
        """SotW: the request's names are the whole subscription. Whether it changed.

        `names_key` (see `SotwRequest`) skips reading names this stream sent before.
        """
        key = None if names_key is None else bytes(names_key)  # memcmp; a memoryview's == is
        if key is not None and key == self._names_key:  # item by item, 40x slower
            return False
        self._names_key = None if key is None else _interned_key(key)
        wanted = frozenset(names)
        wildcard = WILDCARD in wanted or (not wanted and type_url in WILDCARD_TYPES)
        return self.update(wildcard, wanted - {WILDCARD} if WILDCARD in wanted else wanted)

    def update(self, wildcard: bool, names: frozenset[str]) -> bool:
        if wildcard == self.wildcard and names == self.names:
            return False
        self.wildcard, self.names = wildcard, _interned(names)
        return True


_INTERNED: dict[frozenset[str], frozenset[str]] = {}
_TOKENS: dict[frozenset[str], str] = {}
_INTERNED_LIMIT = 512
"""Distinct subscriptions remembered; past this the memo starts over (a cache, not state)."""


def _interned(names: frozenset[str]) -> frozenset[str]:
    found = _INTERNED.get(names)
    if found is None:
        if len(_INTERNED) >= _INTERNED_LIMIT:
            _INTERNED.clear()
            _TOKENS.clear()
        found = _INTERNED[names] = names
    return found


_INTERNED_KEYS: dict[bytes, bytes] = {}


def _interned_key(key: bytes) -> bytes:
    """One copy of each encoded name list, however many streams sent it."""
    found = _INTERNED_KEYS.get(key)
    if found is None:
        if len(_INTERNED_KEYS) >= _INTERNED_LIMIT:
            _INTERNED_KEYS.clear()
        found = _INTERNED_KEYS[key] = key
    return found


def _names_token(names: frozenset[str]) -> str:
    token = _TOKENS.get(names)
    if token is None:
        token = _TOKENS[names] = set_version(dict.fromkeys(names, ""))
    return token


@dataclass
class TypeState:
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


class StreamBase:
    """What both flavours share: the node's resources, nonces, per-type states."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._resources: dict[str, ResourceSet] | None = None
        self._types: dict[str, TypeState] = {}
        self._nonces = itertools.count(1)
        self._last_nonce = 0

    @property
    def resources_known(self) -> bool:
        """Whether the config source knows this node yet."""
        return self._resources is not None

    def status(self) -> dict[str, TypeStatus]:
        """Per requested type URL, in push order."""
        return {t: self._types[t].status() for t in push_ordered(self._types)}

    def nacked(self) -> list[str]:
        """Type URLs whose latest response the client rejected (and has not ACKed since)."""
        return [t for t in push_ordered(self._types) if self._types[t].nack is not None]

    def _next_nonce(self) -> str:
        self._last_nonce = next(self._nonces)
        return str(self._last_nonce)

    def _take(self, resources: Resources | None) -> None:
        self._resources = (
            None
            if resources is None
            else {t: ResourceSet.of(by_name) for t, by_name in resources.items()}
        )

    def _available(self, type_url: str) -> ResourceSet:
        assert self._resources is not None
        return self._resources.get(type_url) or NOTHING

    def _record_nack(
        self, state: TypeState, nonce: str, message: str, rejected_version: str | None
    ) -> Nack:
        state.nack = Nack(
            message=message, nonce=nonce, rejected_version=rejected_version, at=self._clock()
        )
        return state.nack

    def _record_ack(self, state: TypeState, nonce: str, version: str | None) -> None:
        state.acked_version = version
        state.acked_nonce = nonce
        state.last_ack_at = self._clock()


def nack_retry_delay(retries: int, initial_s: float, max_s: float) -> float:
    """How long to wait before resending after the `retries`-th NACK in a row (1-based):
    `initial_s`, doubling up to `max_s`."""
    return float(min(max_s, initial_s * 2 ** max(0, min(retries - 1, 32))))


NOTHING = ResourceSet()
