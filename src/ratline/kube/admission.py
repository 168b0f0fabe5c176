"""Admission, sans IO: an AdmissionReview in, the answer out (validation, injection).

The object under review is validated exactly as `ratline analyze` validates a document
(`ratline.api.document`), so `kubectl apply` of a bad resource is refused with the same
resource, field and message (kubectl adds the file: `error when creating "vs.yaml":
admission webhook "validation.ratline.dev" denied the request: VirtualService
default/reviews: spec.http[0].route[0].weight: …`). A valid one is allowed, with the
analyzers' findings about it (against the config in force) as admission warnings, which
kubectl prints as `Warning: …`, as `ratline apply` returns them.

`injection_review` answers the sidecar injector's review of a pod creation with the JSON
patch `ratline.kube.injection.inject` makes (or none, with the reason, when the pod
opts out); a bad injection annotation refuses the pod, naming the annotation.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ratline.api.analyze import analyze
from ratline.api.document import parse_document
from ratline.api.envelope import Resource, Source
from ratline.api.errors import ConfigMessage, Severity
from ratline.api.kinds import KINDS
from ratline.kube.injection import InjectionParams, inject
from ratline.kube.injection_annotations import InjectionError
from ratline.kube.objects import CLUSTER_SOURCE, clean

WEBHOOK_NAME = "validation.ratline.dev"
REVIEW_VERSION = "admission.k8s.io/v1"
MAX_WARNINGS = 20


def message_text(message: ConfigMessage) -> str:
    """`KIND NS/NAME: FIELD: MESSAGE` (the resource and field, no source)."""
    parts = [str(message.resource)] if message.resource else []
    if message.field:
        parts.append(message.field)
    parts.append(message.message)
    return ": ".join(parts)


def _answer(
    uid: str, allowed: bool, messages: Sequence[str] = (), warnings: Sequence[str] = ()
) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {
            "code": 400,
            "reason": "BadRequest",
            "message": "; ".join(messages),
        }
    if warnings:
        response["warnings"] = list(warnings)[:MAX_WARNINGS]
    return {"apiVersion": REVIEW_VERSION, "kind": "AdmissionReview", "response": response}


def review(
    body: Mapping[str, Any],
    in_force: Callable[[], list[Resource[Any]]],
    mesh_config: Callable[[], Any],
) -> dict[str, Any]:
    """The AdmissionReview answer for one request."""
    request = body.get("request") if isinstance(body, Mapping) else None
    if not isinstance(request, Mapping):
        return _answer("", False, ["not an AdmissionReview request"])
    uid = str(request.get("uid") or "")
    obj = request.get("object")
    if request.get("operation") == "DELETE" or not isinstance(obj, Mapping):
        return _answer(uid, True)
    info = KINDS.get(str(obj.get("kind") or ""))
    document = clean(obj, info)
    namespace = str(request.get("namespace") or "")
    if namespace and info is not None and info.namespaced:
        document["metadata"].setdefault("namespace", namespace)
    if not document["metadata"].get("name") and request.get("name"):
        document["metadata"]["name"] = request["name"]
    resource, messages = parse_document(document, Source(file=CLUSTER_SOURCE))
    errors = [m for m in messages if m.severity is Severity.ERROR]
    if resource is None or errors:
        return _answer(uid, False, [message_text(m) for m in errors or messages])
    current = {r.key: r for r in in_force()}
    current[resource.key] = resource
    findings = analyze(list(current.values()), mesh_config())
    warnings = [message_text(m) for m in findings if m.resource == resource.key]
    return _answer(uid, True, warnings=warnings)


def injection_review(body: Mapping[str, Any], params: InjectionParams) -> dict[str, Any]:
    """The injector's AdmissionReview answer: the pod's JSON patch, or none."""
    request = body.get("request") if isinstance(body, Mapping) else None
    if not isinstance(request, Mapping):
        return _answer("", False, ["not an AdmissionReview request"])
    uid = str(request.get("uid") or "")
    pod = request.get("object")
    if request.get("operation") != "CREATE" or not isinstance(pod, Mapping):
        return _answer(uid, True)
    namespace = str(request.get("namespace") or "")
    try:
        injected = inject(pod, params, namespace)
    except InjectionError as exc:
        name = str((pod.get("metadata") or {}).get("name") or request.get("name") or "")
        return _answer(uid, False, [f"Pod {namespace}/{name}: {exc}"])
    answer = _answer(uid, True, warnings=injected.warnings)
    if injected.patch:
        patch = json.dumps(injected.patch).encode()
        answer["response"]["patchType"] = "JSONPatch"
        answer["response"]["patch"] = base64.b64encode(patch).decode()
    return answer
