"""The registry of config kinds: accepted apiVersions, spec model, scope, naming rules.

`lookup(api_version, kind)` is how the loader finds the model for a document; unknown
kinds and versions get a message listing what is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from ratline.api.schemas.core import NoSpec, ServiceSpec
from ratline.api.schemas.networking import (
    DestinationRuleSpec,
    GatewaySpec,
    ServiceEntrySpec,
    SidecarSpec,
    VirtualServiceSpec,
    WorkloadEntrySpec,
)
from ratline.api.schemas.security import (
    AuthorizationPolicySpec,
    PeerAuthenticationSpec,
    RequestAuthenticationSpec,
)
from ratline.api.schemas.telemetry import TelemetrySpec
from ratline.api.schemas.workload import WorkloadSpec

NameRule = Literal["subdomain", "label", "label1035"]
"""Kubernetes naming: DNS-1123 subdomain, DNS-1123 label, or DNS-1035 label (Services)."""

NETWORKING_VERSIONS = (
    "networking.istio.io/v1",
    "networking.istio.io/v1beta1",
    "networking.istio.io/v1alpha3",
)
SECURITY_VERSIONS = ("security.istio.io/v1", "security.istio.io/v1beta1")
TELEMETRY_VERSIONS = ("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1")
RATLINE_VERSIONS = ("ratline.dev/v1alpha1",)


@dataclass(frozen=True)
class KindInfo:
    """What Ratline knows about one kind."""

    kind: str
    api_versions: tuple[str, ...]
    spec_model: type[BaseModel]
    namespaced: bool = True
    has_spec: bool = True
    """False for kinds with no `spec` (ServiceAccount, Namespace)."""
    name_rule: NameRule = "subdomain"
    other_fields: frozenset[str] = frozenset()
    """Top-level fields besides apiVersion/kind/metadata/spec that are accepted and ignored."""


_ALL: tuple[KindInfo, ...] = (
    KindInfo("VirtualService", NETWORKING_VERSIONS, VirtualServiceSpec),
    KindInfo("DestinationRule", NETWORKING_VERSIONS, DestinationRuleSpec),
    KindInfo("Gateway", NETWORKING_VERSIONS, GatewaySpec),
    KindInfo("ServiceEntry", NETWORKING_VERSIONS, ServiceEntrySpec),
    KindInfo("WorkloadEntry", NETWORKING_VERSIONS, WorkloadEntrySpec),
    KindInfo("Sidecar", NETWORKING_VERSIONS, SidecarSpec),
    KindInfo("PeerAuthentication", SECURITY_VERSIONS, PeerAuthenticationSpec),
    KindInfo("AuthorizationPolicy", SECURITY_VERSIONS, AuthorizationPolicySpec),
    KindInfo("RequestAuthentication", SECURITY_VERSIONS, RequestAuthenticationSpec),
    KindInfo("Telemetry", TELEMETRY_VERSIONS, TelemetrySpec),
    KindInfo("Service", ("v1",), ServiceSpec, name_rule="label1035"),
    KindInfo(
        "ServiceAccount",
        ("v1",),
        NoSpec,
        has_spec=False,
        other_fields=frozenset({"automountServiceAccountToken", "secrets", "imagePullSecrets"}),
    ),
    KindInfo("Namespace", ("v1",), NoSpec, namespaced=False, has_spec=False, name_rule="label"),
    KindInfo("Workload", RATLINE_VERSIONS, WorkloadSpec, name_rule="label"),
)

KINDS: Mapping[str, KindInfo] = {info.kind: info for info in _ALL}
"""Every accepted kind, by kind name."""


class UnknownKindError(ValueError):
    """The kind or apiVersion is not one Ratline accepts; `field` says which."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def lookup(api_version: str, kind: str) -> KindInfo:
    """The KindInfo for `kind` at `api_version`; raises UnknownKindError otherwise."""
    info = KINDS.get(kind)
    if info is None:
        raise UnknownKindError(
            f"unknown kind {kind!r}; accepted kinds: {', '.join(sorted(KINDS))}", "kind"
        )
    if api_version not in info.api_versions:
        raise UnknownKindError(
            f"apiVersion {api_version!r} is not accepted for {kind}; "
            f"use {' or '.join(info.api_versions)}",
            "apiVersion",
        )
    return info


def type_name(kind: str) -> str:
    """kubectl's name for a kind: `virtualservice.networking.istio.io`, `service`."""
    info = KINDS.get(kind)
    api_version = info.api_versions[0] if info else ""
    group = api_version.split("/", 1)[0] if "/" in api_version else ""
    return f"{kind.lower()}.{group}" if group else kind.lower()
