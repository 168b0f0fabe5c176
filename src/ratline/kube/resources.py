"""Kubernetes resource types: where each kind lives in the API, and discovery of served ones.

A `ResourceType` names a collection (`/api/v1/pods`, `/apis/networking.istio.io/v1/
namespaces/default/virtualservices`). The kinds Ratline reads as config come from
`ratline.api.kinds`, so a kind added there is watched here with no change: `discover`
asks the API server which of each kind's apiVersions it serves (CRDs may be Ratline's or
Istio's own) and picks the first one in the kind's own order of preference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ratline.api.kinds import KindInfo
from ratline.kube.connection import KubeApiError, KubeConnection


@dataclass(frozen=True)
class ResourceType:
    """One kind at one group/version, and its collection's name."""

    group: str
    """"" for the core group."""
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version_path(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def collection_path(self, namespace: str | None = None) -> str:
        """Every object (all namespaces), or those of one namespace."""
        if namespace and self.namespaced:
            return f"{self.group_version_path}/namespaces/{namespace}/{self.plural}"
        return f"{self.group_version_path}/{self.plural}"

    def object_path(self, namespace: str, name: str, subresource: str = "") -> str:
        base = self.collection_path(namespace if self.namespaced else None)
        return f"{base}/{name}" + (f"/{subresource}" if subresource else "")

    def __str__(self) -> str:
        return f"{self.plural}.{self.group or 'core'}/{self.version}"


POD = ResourceType("", "v1", "Pod", "pods")
NODE = ResourceType("", "v1", "Node", "nodes", namespaced=False)
NAMESPACE = ResourceType("", "v1", "Namespace", "namespaces", namespaced=False)
CONFIG_MAP = ResourceType("", "v1", "ConfigMap", "configmaps")
SECRET = ResourceType("", "v1", "Secret", "secrets")
SERVICE_ACCOUNT = ResourceType("", "v1", "ServiceAccount", "serviceaccounts")
SERVICE = ResourceType("", "v1", "Service", "services")
DEPLOYMENT = ResourceType("apps", "v1", "Deployment", "deployments")
ENDPOINT_SLICE = ResourceType("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
LEASE = ResourceType("coordination.k8s.io", "v1", "Lease", "leases")
TOKEN_REVIEW = ResourceType(
    "authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False
)
VALIDATING_WEBHOOK = ResourceType(
    "admissionregistration.k8s.io",
    "v1",
    "ValidatingWebhookConfiguration",
    "validatingwebhookconfigurations",
    namespaced=False,
)
MUTATING_WEBHOOK = ResourceType(
    "admissionregistration.k8s.io",
    "v1",
    "MutatingWebhookConfiguration",
    "mutatingwebhookconfigurations",
    namespaced=False,
)
CRD = ResourceType(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    namespaced=False,
)


def split_api_version(api_version: str) -> tuple[str, str]:
    """`networking.istio.io/v1` → (`networking.istio.io`, `v1`); `v1` → (``, `v1`)."""
    group, slash, version = api_version.rpartition("/")
    return (group, version) if slash else ("", api_version)


BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "policy",
        "autoscaling",
        "discovery.k8s.io",
        "networking.k8s.io",
        "coordination.k8s.io",
        "rbac.authorization.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
    }
)
"""API groups of kinds built into Kubernetes (not custom resources such as the Gateway
API's `gateway.networking.k8s.io`)."""


def is_builtin_group(group: str) -> bool:
    """Objects of these groups are Kubernetes' own, validated by the API server itself."""
    return group in BUILTIN_GROUPS


async def served_resources(
    connection: KubeConnection, group: str, version: str
) -> list[ResourceType]:
    """The resource types one group/version serves (none when it is not served)."""
    probe = ResourceType(group, version, "", "")
    try:
        answer = await connection.get(probe.group_version_path)
    except KubeApiError as exc:
        if exc.status in (404, 503):
            return []
        raise
    found = []
    for item in answer.get("resources") or ():
        name = str(item.get("name", ""))
        if "/" in name or not item.get("kind"):
            continue  # a subresource (pods/status)
        found.append(
            ResourceType(group, version, str(item["kind"]), name, bool(item.get("namespaced")))
        )
    return found


@dataclass(frozen=True)
class Discovery:
    """What the API server serves of the kinds Ratline reads."""

    known: Mapping[str, ResourceType]
    """Kind → its resource type at the preferred served apiVersion."""
    unknown: tuple[ResourceType, ...] = ()
    """Kinds of the same API groups (not Kubernetes' own) that Ratline does not read, such
    as Istio kinds not supported yet: watched only to report them."""


async def discover(connection: KubeConnection, kinds: Iterable[KindInfo]) -> Discovery:
    """For each kind the server serves, its resource type at the preferred apiVersion."""
    kinds = list(kinds)
    order = [split_api_version(v) for info in kinds for v in info.api_versions]
    wanted = list(dict.fromkeys(order))
    served: dict[tuple[str, str], Mapping[str, ResourceType]] = {}
    for group, version in wanted:
        served[(group, version)] = {
            r.kind: r for r in await served_resources(connection, group, version)
        }
    chosen: dict[str, ResourceType] = {}
    read: set[tuple[str, str]] = set()
    for info in kinds:
        for api_version in info.api_versions:
            group_version = split_api_version(api_version)
            found = served.get(group_version, {}).get(info.written_kind)
            if found is not None:
                chosen[info.kind] = found
                read.add((group_version[0], info.written_kind))
                break
    others: dict[tuple[str, str], ResourceType] = {}
    for (group, _version), by_kind in served.items():
        if is_builtin_group(group):
            continue
        for kind, resource in by_kind.items():
            if (group, kind) not in read:
                others.setdefault((group, kind), resource)
    return Discovery(chosen, tuple(others.values()))
