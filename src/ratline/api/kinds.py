"""The registry of config kinds: accepted apiVersions, spec model, scope, naming rules.

`lookup(api_version, kind)` is how the loader finds the model for a document; unknown
kinds and versions get a message listing what is accepted.

Kinds Ratline has a schema for are in `KINDS`. Kinds of the Kubernetes and Istio APIs it
has none for yet are accepted as they are (`OPAQUE_KINDS`: a file holding one is not
refused, the analyzers report what Ratline does not do with it); giving such a kind a
schema is adding its `KindInfo` to `_ALL`, which then takes precedence.

The Gateway API's kinds (`gateway.networking.k8s.io`) are in `GATEWAY_API`, looked up by
their group first: its `Gateway` is stored under the kind `KubernetesGateway`
(`KindInfo.document_kind` keeps the written name), so that the store, keyed by kind,
namespace and name, holds it beside Istio's Gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from ratline.api.schemas.core import NoSpec, ServiceSpec
from ratline.api.schemas.gateway_api import (
    GatewayClassSpec,
    GRPCRouteSpec,
    HTTPRouteSpec,
    KubernetesGatewaySpec,
    ReferenceGrantSpec,
    TCPRouteSpec,
    TLSRouteSpec,
)
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
from ratline.api.secrets import BODY_FIELDS, SecretSpec

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
    unsupported: str | None = None
    """For a kind accepted without a schema (its spec is kept, not read): what Ratline does
    not do with it, as the analyzers report it."""
    unsupported_code: str = ""
    body: bool = False
    """The kind's content is its top-level `other_fields`, not a spec (a Secret's `data`):
    `spec_model` is read from the whole document (`ratline.api.document`)."""
    document_kind: str = ""
    """The kind as documents write it, when the store keys it under another `kind` (the
    Gateway API's `Gateway` is stored as `KubernetesGateway`, beside Istio's Gateway)."""

    @property
    def written_kind(self) -> str:
        """The kind as a document writes it."""
        return self.document_kind or self.kind

    @property
    def opaque(self) -> bool:
        """Accepted as written, with no schema (any top-level field, the spec unread)."""
        return self.unsupported is not None


_GATEWAY_API_GROUP = "gateway.networking.k8s.io"


def _group(api_version: str) -> str:
    """`networking.istio.io` of `networking.istio.io/v1`; `` for the core group (`v1`)."""
    return api_version.split("/", 1)[0] if "/" in api_version else ""


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
    KindInfo(
        "Secret",
        ("v1",),
        SecretSpec,
        has_spec=False,
        other_fields=BODY_FIELDS,
        body=True,
    ),
    KindInfo("Workload", RATLINE_VERSIONS, WorkloadSpec, name_rule="label"),
)

KINDS: Mapping[str, KindInfo] = {info.kind: info for info in _ALL}
"""Every kind with a schema, by kind name."""

NOT_SUPPORTED_KIND = "RAT0001"
"""Finding code of an Istio kind accepted without being translated (as translation's
`RAT0001`: valid Istio config Ratline does not translate yet)."""
NOT_RUN_LOCALLY = "RL0104"
"""Finding code of a Kubernetes kind the local runtime does not run (it runs Workloads)."""

_LOCAL_RUNTIME = (
    "{kind} is accepted but the local runtime does not run it; describe the processes "
    "to run as Workload (ratline.dev/v1alpha1) resources"
)
_NOT_TRANSLATED = "{kind} is not yet supported by Ratline; accepted and ignored"


GATEWAY_API_VERSIONS = (
    "gateway.networking.k8s.io/v1",
    "gateway.networking.k8s.io/v1beta1",
    "gateway.networking.k8s.io/v1alpha2",
)
KUBERNETES_GATEWAY = "KubernetesGateway"
"""The store's kind of the Gateway API's `Gateway` (Istio's internal name for it), so
that it and Istio's `Gateway` of the same namespace and name are two resources."""
_GATEWAY_API_KINDS: tuple[KindInfo, ...] = (
    KindInfo("GatewayClass", GATEWAY_API_VERSIONS, GatewayClassSpec, namespaced=False),
    KindInfo(KUBERNETES_GATEWAY, GATEWAY_API_VERSIONS, KubernetesGatewaySpec,
             document_kind="Gateway"),
    KindInfo("HTTPRoute", GATEWAY_API_VERSIONS, HTTPRouteSpec),
    KindInfo("GRPCRoute", GATEWAY_API_VERSIONS, GRPCRouteSpec),
    KindInfo("TCPRoute", GATEWAY_API_VERSIONS, TCPRouteSpec),
    KindInfo("TLSRoute", GATEWAY_API_VERSIONS, TLSRouteSpec),
    KindInfo("ReferenceGrant", GATEWAY_API_VERSIONS, ReferenceGrantSpec),
)
GATEWAY_API: Mapping[str, KindInfo] = {info.written_kind: info for info in _GATEWAY_API_KINDS}
"""The Gateway API's kinds (`gateway.networking.k8s.io`) by the kind documents write."""
GATEWAY_API_KINDS = tuple(info.kind for info in _GATEWAY_API_KINDS)
"""The store's kinds of the Gateway API."""
CLUSTER_KINDS: Mapping[str, KindInfo] = {
    **KINDS, **{info.kind: info for info in _GATEWAY_API_KINDS}
}
"""Every kind with a schema by the store's kind name, the Gateway API's included: what a
control plane reads from a Kubernetes cluster (`ratline.kube.config_store`)."""


def _kubernetes(
    group_versions: tuple[str, ...], kinds: tuple[str, ...], namespaced: bool = True
) -> tuple[KindInfo, ...]:
    return tuple(
        KindInfo(
            kind,
            group_versions,
            NoSpec,
            namespaced=namespaced,
            unsupported=_LOCAL_RUNTIME.format(kind=kind),
            unsupported_code=NOT_RUN_LOCALLY,
        )
        for kind in kinds
    )


def _istio(group_versions: tuple[str, ...], kinds: tuple[str, ...]) -> tuple[KindInfo, ...]:
    return tuple(
        KindInfo(
            kind,
            group_versions,
            NoSpec,
            unsupported=_NOT_TRANSLATED.format(kind=kind),
            unsupported_code=NOT_SUPPORTED_KIND,
        )
        for kind in kinds
    )


_OPAQUE: tuple[KindInfo, ...] = (
    *_kubernetes(("apps/v1",), ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet")),
    *_kubernetes(
        ("v1",),
        ("Pod", "ReplicationController", "ConfigMap", "PersistentVolumeClaim"),
    ),
    *_kubernetes(("batch/v1",), ("Job", "CronJob")),
    *_kubernetes(("autoscaling/v1", "autoscaling/v2"), ("HorizontalPodAutoscaler",)),
    *_kubernetes(("policy/v1",), ("PodDisruptionBudget",)),
    *_kubernetes(("networking.k8s.io/v1",), ("Ingress", "NetworkPolicy")),
    *_kubernetes(("rbac.authorization.k8s.io/v1",), ("Role", "RoleBinding")),
    *_kubernetes(
        ("rbac.authorization.k8s.io/v1",), ("ClusterRole", "ClusterRoleBinding"), namespaced=False
    ),
    *_istio(("networking.istio.io/v1alpha3",), ("EnvoyFilter",)),
    *_istio(NETWORKING_VERSIONS, ("WorkloadGroup",)),
    *_istio(("networking.istio.io/v1beta1",), ("ProxyConfig",)),
    *_istio(("telemetry.istio.io/v1", "telemetry.istio.io/v1alpha1"), ("Telemetry",)),
    *_istio(("extensions.istio.io/v1alpha1",), ("WasmPlugin",)),
)

OPAQUE_KINDS: Mapping[tuple[str, str], KindInfo] = {
    (_group(version), info.kind): info
    for info in _OPAQUE
    if info.kind not in KINDS
    for version in info.api_versions
}
"""(API group, kind) → a kind accepted without a schema; a kind of `KINDS` never is."""


class UnknownKindError(ValueError):
    """The kind or apiVersion is not one Ratline accepts; `field` says which."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def known_kind(api_version: object, kind: object) -> KindInfo | None:
    """The KindInfo of a document's kind as far as it can be told (never raises)."""
    if not isinstance(kind, str):
        return None
    if isinstance(api_version, str) and _group(api_version) == _GATEWAY_API_GROUP:
        return GATEWAY_API.get(kind)
    if isinstance(api_version, str):
        opaque = OPAQUE_KINDS.get((_group(api_version), kind))
        if opaque is not None and api_version in opaque.api_versions:
            return opaque
    return KINDS.get(kind)


def lookup(api_version: str, kind: str) -> KindInfo:
    """The KindInfo for `kind` at `api_version`; raises UnknownKindError otherwise."""
    if _group(api_version) == _GATEWAY_API_GROUP:
        return _gateway_api_lookup(api_version, kind)
    info = KINDS.get(kind)
    opaque = OPAQUE_KINDS.get((_group(api_version), kind))
    if opaque is not None and (info is None or api_version not in info.api_versions):
        if api_version in opaque.api_versions:
            return opaque
        info = opaque
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


def _gateway_api_lookup(api_version: str, kind: str) -> KindInfo:
    info = GATEWAY_API.get(kind)
    if info is None:
        raise UnknownKindError(
            f"unknown Gateway API kind {kind!r}; accepted: {', '.join(sorted(GATEWAY_API))}",
            "kind",
        )
    if api_version not in info.api_versions:
        raise UnknownKindError(
            f"apiVersion {api_version!r} is not accepted for {kind}; "
            f"use {' or '.join(info.api_versions)}",
            "apiVersion",
        )
    return info


def by_store_kind(kind: str) -> KindInfo | None:
    """The KindInfo of a store kind (`KubernetesGateway` included)."""
    return KINDS.get(kind) or next((i for i in _GATEWAY_API_KINDS if i.kind == kind), None)


def type_name(kind: str, api_version: str | None = None) -> str:
    """kubectl's name for a kind: `virtualservice.networking.istio.io`, `service`,
    `deployment.apps`, `gateway.gateway.networking.k8s.io` (for `KubernetesGateway`)."""
    info = known_kind(api_version, kind) if api_version else None
    if info is None:
        info = by_store_kind(kind)
        if info is not None and info.document_kind:
            return f"{info.document_kind.lower()}.{_group(info.api_versions[0])}"
    if info is None:
        info = KINDS.get(kind) or next((i for i in _OPAQUE if i.kind == kind), None)
    group = _group(info.api_versions[0]) if info else ""
    written = info.written_kind if info else kind
    return f"{written.lower()}.{group}" if group else written.lower()
