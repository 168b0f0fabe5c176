"""The sans-IO state of one state-of-the-world ADS stream (rules in `protocol`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ratline.xds.protocol import (
    WILDCARD_TYPES,
    Clock,
    Handled,
    Nack,
    SotwRequest,
    SotwResponse,
    StreamBase,
    TypeState,
    push_ordered,
)
from ratline.xds.resource_set import ResourceSet, diff
from ratline.xds.types import CLUSTER, ENDPOINT, Resources


@dataclass(frozen=True)
class _SotwSent:
    """What the last response of one type was computed from."""

    available: ResourceSet
    wildcard: bool
    names: frozenset[str]


class SotwStream(StreamBase):
    """State-of-the-world ADS: a CDS or LDS response holds the whole set of its type; an
    EDS, RDS or SDS response the whole subscribed set when asked afresh, else what changed.
    """

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        self._sent: dict[str, _SotwSent] = {}

    def handle_request(self, request: SotwRequest) -> Handled:
        state = self._types.get(request.type_url)
        if state is None:
            state = self._types[request.type_url] = TypeState(request.type_url)
        nack: Nack | None = None
        if request.response_nonce:
            if request.response_nonce != state.sent_nonce:
                return Handled([], stale=True)
            if request.error_detail is not None:
                nack = self._record_nack(
                    state, request.response_nonce, request.error_detail, state.sent_version
                )
                state.acked_version = request.version_info or state.acked_version
            else:
                self._record_ack(state, request.response_nonce, request.version_info)
                state.nack = None
        else:
            state.owes_response = True
        state.subscription.replace_sotw(request.type_url, request.resource_names, request.names_key)
        response = self._respond(state)
        return Handled([response] if response else [], nack=nack)

    def set_resources(self, resources: Resources | None) -> list[SotwResponse]:
        """The node's config changed (or became known): what to send now, in push order."""
        self._take(resources)
        responses: list[SotwResponse] = []
        cluster_changes: frozenset[str] = frozenset()
        for type_url in push_ordered(self._types):
            state = self._types[type_url]
            if type_url == CLUSTER and CLUSTER in self._sent and self._resources is not None:
                cluster_changes = diff(
                    self._sent[CLUSTER].available, self._available(CLUSTER)
                ).changed
            also = cluster_changes if type_url == ENDPOINT else frozenset()
            response = self._respond(state, also, resend=state.nack is not None)
            if response is not None:
                responses.append(response)
        return responses

    def _respond(
        self, state: TypeState, also: frozenset[str] = frozenset(), resend: bool = False
    ) -> SotwResponse | None:
        """The response `state` needs now, if any. `also`: names to send even if unchanged
        (endpoints of clusters sent anew: those clusters warm until they get them);
        `resend`: the whole subscribed set even if unchanged (the last one was NACKed)."""
        if self._resources is None:
            return None
        type_url = state.type_url
        available = self._available(type_url)
        subscription = state.subscription
        sent = self._sent.get(type_url)
        whole = state.owes_response or sent is None or resend
        names: list[str] = []
        if not whole:
            assert sent is not None
            same_subscription = (
                sent.wildcard == subscription.wildcard and sent.names is subscription.names
            )
            if sent.available is available and same_subscription and not also:
                return None
            changes = diff(sent.available, available)
            if type_url in WILDCARD_TYPES and subscription.wildcard:
                whole = bool(changes) or not same_subscription
            else:
                # For all but CDS and LDS, a resource left out keeps its last value, so
                # send just what changed (Istio's incremental EDS): one endpoint change is
                # one assignment, not the mesh.
                wanted = set(changes.changed) | also
                if not same_subscription:
                    wanted.update(
                        available if subscription.wildcard else subscription.names - sent.names
                    )
                names = sorted(n for n in wanted if n in available and subscription.covers(n))
            if not whole and not names:
                self._sent[type_url] = _SotwSent(
                    available, subscription.wildcard, subscription.names
                )
                return None
        version = subscription.version_of(available)
        nonce = self._next_nonce()
        self._sent[type_url] = _SotwSent(available, subscription.wildcard, subscription.names)
        state.sent_version, state.sent_nonce, state.owes_response = version, nonce, False
        if whole:
            resources = subscription.select(available)
            complete = available if subscription.wildcard else None
            return SotwResponse(type_url, version, nonce, resources, complete)
        return SotwResponse(type_url, version, nonce, tuple(available[n] for n in names))
