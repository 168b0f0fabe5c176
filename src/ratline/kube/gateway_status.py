"""Gateway API statuses, as Istio's gateway controller writes them (pure).

The model computes each Gateway API object's status when it converts the routes
(`MeshSnapshot.gateway_api_status`: a Gateway's conditions and listeners with their
attached routes, a route's `status.parents` with `Accepted` and `ResolvedRefs`, its
reasons such as `BackendNotFound`, `NotAllowedByListeners`, `RefNotPermitted`): that is
what is written, every condition stamped with the object's `observedGeneration` and a
`lastTransitionTime` kept while its status does not change.

An object the model has no status for (refused at validation, so its last good
version, if any, is what the model saw; or a GatewayClass) gets one from its findings:
- a GatewayClass whose `controllerName` is Istio's: `Accepted`;
- a Gateway: `Accepted` and `Programmed`;
- a route (HTTPRoute, GRPCRoute, TCPRoute, TLSRoute): per `spec.parentRefs` entry, a
  `status.parents` item with Istio's `controllerName` and `Accepted` and `ResolvedRefs`
  (`False`/`BackendNotFound` when a finding names one of its `backendRefs`).
Findings' text (`ratline analyze`'s) is then the conditions' message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ratline.api.errors import ConfigMessage, Severity
from ratline.api.gateway_api import CONTROLLER_NAME, GATEWAY_API_GROUP
from ratline.api.kinds import KUBERNETES_GATEWAY
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


def _stamped(
    conditions: Iterable[Mapping[str, Any]],
    previous: Iterable[Mapping[str, Any]],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    previous = list(previous)
    out = []
    for cond in conditions:
        since = now
        for old in previous:
            if old.get("type") == cond.get("type") and old.get("status") == cond.get("status"):
                since = str(old.get("lastTransitionTime") or now)
        out.append({**cond, "observedGeneration": generation, "lastTransitionTime": since})
    return out


def stamped_status(
    computed: Mapping[str, Any], current: Mapping[str, Any] | None, generation: int, now: str
) -> dict[str, Any]:
    """The model's status of an object with every condition's `observedGeneration` and
    `lastTransitionTime` (kept from `current` while the condition's status holds)."""
    current = current or {}
    out: dict[str, Any] = dict(computed)
    if "conditions" in computed:
        out["conditions"] = _stamped(
            computed["conditions"], current.get("conditions") or (), generation, now
        )
    for part, key in (("listeners", "name"), ("parents", "parentRef")):
        if part not in computed:
            continue
        old_items = current.get(part) or ()
        items = []
        for item in computed[part]:
            old: Mapping[str, Any] = next(
                (o for o in old_items if o.get(key) == item.get(key)), {}
            )
            items.append({**item, "conditions": _stamped(
                item.get("conditions") or (), old.get("conditions") or (), generation, now)})
        out[part] = items
    return out


def gateway_api_status(
    obj: ClusterObject,
    messages: Iterable[ConfigMessage],
    refused: bool,
    now: str,
    computed: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The status to write for one Gateway API object, or None when it is not Ratline's:
    the model's (`computed`) unless the object's current version was refused."""
    if computed is not None and not refused:
        return stamped_status(computed, obj.status, obj.generation, now)
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
    if obj.kind == KUBERNETES_GATEWAY:
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
