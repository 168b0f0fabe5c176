"""The sans-IO state of one delta (incremental) ADS stream (rules in `protocol`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from ratline.xds.protocol import (
    NOTHING,
    WILDCARD,
    WILDCARD_TYPES,
    Clock,
    DeltaRequest,
    DeltaResponse,
    Handled,
    Nack,
    StreamBase,
    TypeState,
    push_ordered,
)
from ratline.xds.resource_set import ResourceSet, diff
from ratline.xds.types import CLUSTER, ENDPOINT, Resources, VersionedResource


@dataclass
class _DeltaSent:
    system_version: str
    updated: frozenset[str]


class DeltaStream(StreamBase):
    """Incremental ADS: send only what the client lacks, remove what is gone.

    What the client holds of a type is `synced` (the set the last response was computed
    from) corrected by `unsynced` (name → the version the client has, None for none),
    so a push costs O(what changed), not O(what the client holds).
    """

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._synced: dict[str, ResourceSet] = {}
        self._unsynced: dict[str, dict[str, str | None]] = {}
        self._in_flight: dict[str, dict[str, _DeltaSent]] = {}
        """type URL → nonce → what that response carried."""

    def known(self, type_url: str) -> dict[str, str]:
        """The resources we believe the client holds (name → version); for tests and dumps."""
        synced = self._synced.get(type_url, NOTHING)
        unsynced = self._unsynced.get(type_url, {})
        held = {name: r.version for name, r in synced.items() if name not in unsynced}
        held.update({n: v for n, v in unsynced.items() if v is not None})
        return held

    def _held(self, type_url: str, name: str) -> str | None:
        unsynced = self._unsynced[type_url]
        if name in unsynced:
            return unsynced[name]
        found = self._synced.get(type_url, NOTHING).get(name)
        return found.version if found is not None else None

    def handle_request(self, request: DeltaRequest) -> Handled:
        type_url = request.type_url
        state = self._types.get(type_url)
        first = state is None
        if state is None:
            state = self._types[type_url] = TypeState(type_url)
            self._unsynced[type_url] = dict(request.initial_resource_versions)
            self._in_flight[type_url] = {}
            if type_url in WILDCARD_TYPES and not request.subscribe:
                state.subscription.wildcard = True
        nack: Nack | None = None
        stale = False
        if request.response_nonce:
            sent = self._in_flight[type_url].pop(request.response_nonce, None)
            if sent is None:
                stale = True
            elif request.error_detail is not None:
                nack = self._record_nack(
                    state, request.response_nonce, request.error_detail, sent.system_version
                )
                state.nack_horizon = self._last_nonce
                unsynced = self._unsynced[type_url]
                for name in sent.updated:
                    unsynced[name] = None  # forget it: the next change sends it again
            else:
                self._record_ack(state, request.response_nonce, sent.system_version)
                if state.nack is not None and int(request.response_nonce) > state.nack_horizon:
                    state.nack = None
        elif not first:
            state.owes_response = True
        if first:
            state.owes_response = True
        touched = self._change_subscription(state, request.subscribe, request.unsubscribe)
        if touched is None:
            state.owes_response = True
        response = (
            self._respond(state, touched or frozenset()) if touched or state.owes_response else None
        )
        return Handled([response] if response else [], nack=nack, stale=stale)

    def set_resources(self, resources: Resources | None) -> list[DeltaResponse]:
        """The node's config changed (or became known): what to send now, in push order."""
        self._take(resources)
        responses: list[DeltaResponse] = []
        sent_clusters: frozenset[str] = frozenset()
        for type_url in push_ordered(self._types):
            also: frozenset[str] = frozenset()
            if type_url == ENDPOINT:
                unsynced = self._unsynced[ENDPOINT]
                for name in sent_clusters:
                    if self._held(ENDPOINT, name) is not None:
                        unsynced[name] = None  # resend: the new cluster warms on its endpoints
                also = sent_clusters
            response = self._respond(self._types[type_url], also)
            if response is not None:
                responses.append(response)
                if type_url == CLUSTER:
                    sent_clusters = frozenset(r.name for r in response.resources)
        return responses

    def _change_subscription(
        self, state: TypeState, subscribe: Sequence[str], unsubscribe: Sequence[str]
    ) -> frozenset[str] | None:
        """Apply a request's (un)subscriptions; the names they touched (None: the wildcard
        changed, so everything must be looked at again)."""
        subscription = state.subscription
        if not subscribe and not unsubscribe:
            return frozenset()  # an ACK or a plain request: nothing to copy
        wildcard, names = subscription.wildcard, set(subscription.names)
        touched = set()
        for name in subscribe:
            if name == WILDCARD:
                wildcard = True
            else:
                names.add(name)
                touched.add(name)
        for name in unsubscribe:
            if name == WILDCARD:
                wildcard = False
            else:
                names.discard(name)
                touched.add(name)
        wildcard_changed = wildcard != subscription.wildcard
        if not subscription.update(wildcard, frozenset(names)):
            return frozenset()
        unsynced = self._unsynced[state.type_url]
        if wildcard_changed:
            for name in self.known(state.type_url):
                if not subscription.covers(name):
                    unsynced[name] = None  # the client drops what it unsubscribed from
            return None
        for name in touched:
            if not subscription.covers(name):
                unsynced[name] = None
        return frozenset(touched)

    def _respond(
        self, state: TypeState, also: frozenset[str] = frozenset()
    ) -> DeltaResponse | None:
        if self._resources is None:
            return None
        type_url = state.type_url
        available = self._available(type_url)
        subscription = state.subscription
        synced = self._synced.get(type_url)
        unsynced = self._unsynced[type_url]
        if state.owes_response or synced is None:
            candidates: set[str] = set(available) | set(self.known(type_url))
        else:
            changes = diff(synced, available)
            candidates = set(changes.changed) | changes.removed | unsynced.keys() | also
        updated: list[VersionedResource] = []
        removed: list[str] = []
        for name in sorted(candidates):
            held = self._held(type_url, name)
            resource = available.get(name) if subscription.covers(name) else None
            if resource is not None and held != resource.version:
                updated.append(resource)
            elif resource is None and held is not None:
                removed.append(name)
        if not updated and not removed and not state.owes_response:
            self._resync(type_url, available, candidates)
            return None
        system_version = subscription.version_of(available)
        nonce = self._next_nonce()
        self._resync(type_url, available, candidates)
        self._in_flight[type_url][nonce] = _DeltaSent(
            system_version, frozenset(r.name for r in updated)
        )
        state.sent_version, state.sent_nonce, state.owes_response = system_version, nonce, False
        return DeltaResponse(type_url, system_version, nonce, tuple(updated), tuple(removed))

    def _resync(self, type_url: str, available: ResourceSet, candidates: set[str]) -> None:
        """After a response: the client holds `available`'s version of every name it is
        subscribed to among `candidates` (and of the names that did not change)."""
        subscription = self._types[type_url].subscription
        unsynced = self._unsynced[type_url]
        self._synced[type_url] = available
        for name in candidates:
            if name in available and not subscription.covers(name):
                unsynced[name] = None
            else:
                unsynced.pop(name, None)
