"""The Kubernetes-style envelope every config resource shares: apiVersion, kind, metadata, spec.

`Resource` is the validated, immutable form the rest of Ratline works with; `Source`
says where it came from so that every error can name the file and the document.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

DEFAULT_NAMESPACE = "default"
_SHOWN_KINDS = {"KubernetesGateway": "Gateway.gateway.networking.k8s.io"}
"""Store kinds shown as users write them (the Gateway API's Gateway, `ratline.api.kinds`)."""

SpecT = TypeVar("SpecT", bound=BaseModel)


@dataclass(frozen=True)
class Source:
    """Where a resource was read from: a file and the 1-based document in it."""

    file: str | None = None
    document: int | None = None

    def describe(self) -> str:
        """`bookinfo/vs.yaml: document 2`, or what is known of that."""
        parts = []
        if self.file:
            parts.append(self.file)
        if self.document is not None:
            parts.append(f"document {self.document}")
        return ": ".join(parts) if parts else "<input>"


@dataclass(frozen=True, order=True)
class ResourceKey:
    """Identifies a resource in the store: its kind, namespace and name."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        kind = _SHOWN_KINDS.get(self.kind, self.kind)
        return f"{kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Resource(Generic[SpecT]):
    """One validated config resource."""

    api_version: str
    kind: str
    name: str
    namespace: str
    spec: SpecT
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    source: Source = field(default_factory=Source)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """The document as written (after defaulting the namespace), for persistence."""

    @property
    def key(self) -> ResourceKey:
        return ResourceKey(self.kind, self.namespace, self.name)
