"""Status write-back: what Ratline found about each config object, on the object itself.

Istio's shape (`IstioStatus`): `status.observedGeneration`, `status.validationMessages`
(one per analyzer finding: level, `type.code`/`type.name`, documentation URL) and
`status.conditions`; Ratline writes one condition, `Reconciled`: `True` when the object's
current generation is in force, `False` when Ratline refused it (its previous version, if
any, stays in force) or its kind is one Ratline accepts without translating (reason
`NotSupported`), with the findings' text (field and message, as `ratline analyze`
prints them) as the condition's message, since Istio's CRDs keep no text in
`validationMessages`. Gateway API objects get the Gateway API's own statuses instead,
as the model computed them (`ratline.kube.gateway_status`).

`desired_status` is pure; `StatusWriter` (run by the leader only) patches the `status`
subresource of the objects whose status differs, after a quiet period following changes.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ratline.api.envelope import ResourceKey
from ratline.api.errors import ConfigMessage, Severity
from ratline.api.kinds import NOT_SUPPORTED_KIND
from ratline.kube.config_store import KubeConfigStore
from ratline.kube.connection import MERGE_PATCH, KubeApiError, KubeConnection
from ratline.kube.gateway_status import GATEWAY_API_GROUP, gateway_api_status
from ratline.kube.objects import ClusterObject
from ratline.kube.reconcile import Reconciler
from ratline.kube.resources import is_builtin_group

log = logging.getLogger("ratline.kube.status")

RECONCILED = "Reconciled"
MESSAGE_NAMES = {
    "IST0101": "ReferencedResourceNotFound",
    "IST0109": "ConflictingMeshGatewayVirtualServiceHosts",
    "RL0001": "DuplicateResource",
    "RL0101": "RouteWeightsNot100",
    "RL0102": "ServiceSelectsNoWorkload",
    "RL0103": "CommandNotFound",
    "RAT0001": "NotSupported",
    "RAT0002": "Unresolved",
    "RAT0003": "Conflict",
    "RAT0004": "Defaulted",
}
MAX_MESSAGE = 4000


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_text(message: ConfigMessage) -> str:
    """A finding without its source (the object is the source): `FIELD: MESSAGE`."""
    text = f"{message.field}: {message.message}" if message.field else message.message
    if message.severity is Severity.WARNING:
        text = f"warning: {text}"
    return f"{text} ({message.code})" if message.code else text


def _validation_message(message: ConfigMessage) -> dict[str, Any]:
    item: dict[str, Any] = {
        "level": "ERROR" if message.severity is Severity.ERROR else "WARNING",
        "type": {"code": message.code},
    }
    if message.code in MESSAGE_NAMES:
        item["type"]["name"] = MESSAGE_NAMES[message.code]
    if message.code.startswith("IST"):
        item["documentationUrl"] = (
            f"https://istio.io/latest/docs/reference/config/analysis/{message.code.lower()}/"
        )
    return item


def desired_status(
    obj: ClusterObject, messages: Iterable[ConfigMessage], refused: bool, now: str
) -> dict[str, Any]:
    """The status Ratline writes for one Istio-style object given its findings."""
    messages = list(messages)
    texts = [message_text(m) for m in messages]
    ignored = any(m.code == NOT_SUPPORTED_KIND and m.field == "kind" for m in messages)
    if refused:
        reason = "Refused"
        summary = "not in force (a previous version, if any, stays): " + "; ".join(texts)
    elif ignored:
        reason = "NotSupported"
        summary = "accepted, not translated: " + "; ".join(texts)
    else:
        reason = "Accepted"
        summary = "in force" + (": " + "; ".join(texts) if texts else "")
    condition = {
        "type": RECONCILED,
        "status": "False" if refused or ignored else "True",
        "reason": reason,
        "message": summary[:MAX_MESSAGE],
        "observedGeneration": obj.generation,
        "lastTransitionTime": now,
    }
    previous = [
        c for c in (obj.status or {}).get("conditions") or () if c.get("type") == RECONCILED
    ]
    if previous and str(previous[0].get("status")) == condition["status"]:
        condition["lastTransitionTime"] = previous[0].get("lastTransitionTime") or now
    status: dict[str, Any] = {"observedGeneration": obj.generation, "conditions": [condition]}
    coded = [_validation_message(m) for m in messages if m.code]
    status["validationMessages"] = coded
    return status


def _without_times(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _without_times(v) for k, v in value.items() if k != "lastTransitionTime"}
    if isinstance(value, list | tuple):
        return [_without_times(v) for v in value]
    return value


def status_differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` would change anything but timestamps."""
    current = current or {}
    return any(
        _without_times(current.get(key)) != _without_times(value) for key, value in desired.items()
    )


def findings_by_object(messages: Iterable[ConfigMessage]) -> dict[ResourceKey, list[ConfigMessage]]:
    grouped: dict[ResourceKey, list[ConfigMessage]] = {}
    seen: set[tuple[ResourceKey, str]] = set()
    for message in messages:
        if message.resource is None:
            continue
        marker = (message.resource, f"{message.severity} {message.code} {message_text(message)}")
        if marker in seen:
            continue
        seen.add(marker)
        grouped.setdefault(message.resource, []).append(message)
    return grouped


class StatusWriter(Reconciler):
    """Writes every config object's status after changes (leader only)."""

    what = "status write-back"

    def __init__(
        self,
        connection: KubeConnection,
        store: KubeConfigStore,
        findings: Callable[[], list[ConfigMessage]],
        debounce_s: float,
        gateway_api_statuses: Callable[[], Mapping[ResourceKey, Mapping[str, Any]]] = dict,
    ) -> None:
        self.connection = connection
        self.store = store
        self.findings = findings
        """Every current finding: refused objects, analyzers, translation."""
        self.gateway_api_statuses = gateway_api_statuses
        """The model's statuses of the Gateway API objects in force (the snapshot's)."""
        super().__init__(debounce_s, retry_s=max(1.0, debounce_s))
        self.writes = 0

    async def reconcile(self) -> None:
        """After each burst of changes, write what differs."""
        await self.write_all()

    def pending(self) -> list[tuple[ResourceKey, ClusterObject, dict[str, Any]]]:
        """(key, object, status) of every object whose status should change."""
        grouped = findings_by_object(self.findings())
        refused = {m.resource for m in self.store.refused if m.resource is not None}
        in_force = {s.resource.key for s in self.store.stored()}
        now = now_rfc3339()
        computed = self.gateway_api_statuses()
        out = []
        for key, obj in self.store.objects().items():
            resource_type = self.store.types.get(key.kind)
            if resource_type is None or is_builtin_group(resource_type.group):
                continue
            messages = grouped.get(key, [])
            if resource_type.group == GATEWAY_API_GROUP:
                desired = gateway_api_status(
                    obj, messages, key in refused, now, computed.get(key)
                )
                if desired is None:
                    continue
            else:
                desired = desired_status(obj, messages, key in refused or key not in in_force, now)
            if status_differs(obj.status, desired):
                out.append((key, obj, desired))
        return out

    async def write_all(self) -> None:
        for key, obj, desired in self.pending():
            resource_type = self.store.types[key.kind]
            path = resource_type.object_path(key.namespace, key.name, "status")
            # The uid is a precondition: never the status of a namesake made since.
            body = {"metadata": {"uid": obj.uid} if obj.uid else {}, "status": desired}
            try:
                await self.connection.request("PATCH", path, body=body, content_type=MERGE_PATCH)
            except KubeApiError as exc:
                if exc.status in (404, 409, 422):
                    log.info("status of %s not written: %s", key, exc)
                    continue
                raise
            self.writes += 1
