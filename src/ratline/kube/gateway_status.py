"""Gateway API statuses, as Istio's gateway controller writes them (pure).

For kinds of `gateway.networking.k8s.io` (when `ratline.api.kinds` knows them):
- a GatewayClass whose `controllerName` is Istio's: `Accepted`;
- a Gateway: `Accepted` and `Programmed`;
- a route (HTTPRoute, GRPCRoute, TCPRoute, TLSRoute): per `spec.parentRefs` entry, a
  `status.parents` item with Istio's `controllerName` and `Accepted` and `ResolvedRefs`
  (`False`/`BackendNotFound` when a finding names one of its `backendRefs`).

Each condition carries `observedGeneration`, and keeps its `lastTransitionTime` while its
status does not change. Findings' text (`ratline analyze`'s) is the conditions' message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ratline.api.errors import ConfigMessage, Severity
from ratline.api.gateway_api import CONTROLLER_NAME, GATEWAY_API_GROUP
from ratline.kube.objects import ClusterObject

__all__ = ["CONTROLLER_NAME", "GATEWAY_API_GROUP", "ROUTE_KINDS", "gateway_api_status"]
ROUTE_KINDS = frozenset({"HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"})


def _text(messages: Iterable[ConfigMessage]) -> str:
    parts = []
    for m in messages:
        parts.append(f"{m.field}: {m.message}" if m.field else m.message)
    return "; ".join(parts)


def _condition(
    kind: str,
    ok: bool,
    reason_ok: str,
    reason_bad: str,
    message: str,
    generation: int,
    now: str,
    previous: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    status = "True" if ok else "False"
    since = now
    for old in previous:
        if old.get("type") == kind and old.get("status") == status:
            since = str(old.get("lastTransitionTime") or now)
    return {
        "type": kind,
        "status": status,
        "reason": reason_ok if ok else reason_bad,
        "message": message or ("Resource accepted" if ok else "Resource refused"),
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


def gateway_api_status(
    obj: ClusterObject, messages: Iterable[ConfigMessage], refused: bool, now: str
) -> dict[str, Any] | None:
    """The status to write for one Gateway API object, or None when it is not Ratline's."""
    messages = list(messages)
    errors = [m for m in messages if m.severity is Severity.ERROR]
    accepted = not refused and not errors
    text = _text(messages)
    spec = obj.body.get("spec") or {}
    current = obj.status or {}
    generation = obj.generation
    if obj.kind == "GatewayClass":
        if spec.get("controllerName") != CONTROLLER_NAME:
            return None
        previous = current.get("conditions") or ()
        cond = _condition(
            "Accepted", accepted, "Accepted", "InvalidParameters", text, generation, now, previous
        )
        return {"conditions": [cond]}
    if obj.kind == "Gateway":
        previous = current.get("conditions") or ()
        return {
            "conditions": [
                _condition(
                    "Accepted", accepted, "Accepted", "Invalid", text, generation, now, previous
                ),
                _condition(
                    "Programmed", accepted, "Programmed", "Invalid", text, generation, now, previous
                ),
            ]
        }
    if obj.kind not in ROUTE_KINDS:
        return None
    unresolved = [m for m in messages if m.field and "backendRefs" in m.field]
    parents = []
    old_parents = current.get("parents") or ()
    for ref in spec.get("parentRefs") or ():
        previous = next(
            (p.get("conditions") or () for p in old_parents if p.get("parentRef") == ref), ()
        )
        parents.append(
            {
                "parentRef": ref,
                "controllerName": CONTROLLER_NAME,
                "conditions": [
                    _condition(
                        "Accepted",
                        accepted,
                        "Accepted",
                        "NotAllowedByListeners",
                        text,
                        generation,
                        now,
                        previous,
                    ),
                    _condition(
                        "ResolvedRefs",
                        not unresolved,
                        "ResolvedRefs",
                        "BackendNotFound",
                        _text(unresolved),
                        generation,
                        now,
                        previous,
                    ),
                ],
            }
        )
    return {"parents": parents}
