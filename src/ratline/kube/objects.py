"""Cluster objects as Ratline resources: what the informers keep and how it is validated.

`clean` turns an API object into the document a user would have written: the server's
bookkeeping (managedFields, resourceVersion, uid, status, kubectl's last-applied
annotation) is dropped, and for kinds Kubernetes itself validates (Service,
ServiceAccount, Namespace) so are spec fields Ratline does not model (they are the
cluster's business, and were checked by the API server). A custom resource keeps every
field: one Ratline does not know is reported, never dropped in silence.

`to_resource` validates a cleaned document exactly as a file's document is validated, so
a resource from the cluster and the same YAML in a mesh directory give the same Resource.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.api.document import parse_document
from ratline.api.envelope import Resource, Source
from ratline.api.errors import ConfigMessage
from ratline.api.kinds import KindInfo
from ratline.kube.resources import is_builtin_group, split_api_version

CLUSTER_SOURCE = "kubernetes"
"""The `file` of a cluster resource's Source: messages read `kubernetes, VirtualService
default/reviews: spec.http[0]…`."""
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
_KEPT_METADATA = ("name", "namespace", "labels", "annotations", "creationTimestamp")


@dataclass(frozen=True)
class ClusterObject:
    """A config object as an informer keeps it (equal when nothing Ratline reads changed)."""

    kind: str
    namespace: str
    name: str
    body: Mapping[str, Any] = field(hash=False)
    """The cleaned document."""
    generation: int = 0
    """`metadata.generation` (status reports the generation it describes)."""
    uid: str = ""
    status: Mapping[str, Any] | None = field(default=None, hash=False)
    """The object's status as the cluster holds it (what the status writer compares)."""

    def same_config(self, other: ClusterObject) -> bool:
        """Equal but for the status."""
        return self.body == other.body and self.generation == other.generation


def _spec_fields(info: KindInfo) -> frozenset[str]:
    names = set()
    for name, model_field in info.spec_model.model_fields.items():
        names.add(model_field.alias or name)
    return frozenset(names)


def clean(obj: Mapping[str, Any], info: KindInfo | None) -> dict[str, Any]:
    """The document a user would have written for this API object."""
    metadata = obj.get("metadata") or {}
    kept: dict[str, Any] = {k: metadata[k] for k in _KEPT_METADATA if metadata.get(k)}
    annotations = {
        k: v for k, v in (metadata.get("annotations") or {}).items() if k != LAST_APPLIED
    }
    if annotations:
        kept["annotations"] = annotations
    else:
        kept.pop("annotations", None)
    body: dict[str, Any] = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "metadata": kept,
    }
    group, _version = split_api_version(str(obj.get("apiVersion") or ""))
    if info is not None:
        for other in info.other_fields:
            if other in obj:
                body[other] = obj[other]
        if not info.has_spec:
            return body
    spec = obj.get("spec")
    if info is not None and is_builtin_group(group) and isinstance(spec, Mapping):
        known = _spec_fields(info)
        spec = {k: v for k, v in spec.items() if k in known}
    if spec is not None or info is None or info.has_spec:
        body["spec"] = spec if spec is not None else {}
    return body


def cluster_object(
    obj: Mapping[str, Any], kind: str, api_version: str, info: KindInfo | None
) -> ClusterObject:
    """The informer's transform for config kinds: `kind` is the store's (`KubernetesGateway`
    for the Gateway API's `Gateway`). List answers of built-in kinds carry no apiVersion
    and kind in their items: those of the watched type are filled in."""
    metadata = obj.get("metadata") or {}
    if not obj.get("kind") or not obj.get("apiVersion"):
        obj = {
            **obj,
            "kind": obj.get("kind") or (info.written_kind if info is not None else kind),
            "apiVersion": obj.get("apiVersion") or api_version,
        }
    return ClusterObject(
        kind=kind,
        namespace=str(metadata.get("namespace") or ""),
        name=str(metadata.get("name") or ""),
        body=clean(obj, info),
        generation=int(metadata.get("generation") or 0),
        uid=str(metadata.get("uid") or ""),
        status=obj.get("status") if isinstance(obj.get("status"), Mapping) else None,
    )


def to_resource(obj: ClusterObject) -> tuple[Resource[Any] | None, list[ConfigMessage]]:
    """Validate one cluster object as a document of a file would be."""
    return parse_document(dict(obj.body), Source(file=CLUSTER_SOURCE))
