"""CustomResourceDefinitions for every Istio kind Ratline reads, and its own kinds.

Generated from `ratline.api.kinds` and the schemas (`ratline.kube.openapi`): each API
group's kinds get one CRD each, every accepted apiVersion served (`v1`, `v1beta1`,
`v1alpha3`, as Istio's), the first one stored, all with the same schema (so no
conversion is needed), a `status` subresource (status write-back) and Istio's short
names and categories (`kubectl get vs`, `kubectl get istio-io`). Kubernetes' own kinds
and other projects' custom resources (the Gateway API's) are not Ratline's to define.
`ratline manifest crds` prints them; Istio's own CRDs work as well instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ratline.api.kinds import GATEWAY_API, KINDS, KindInfo
from ratline.kube.openapi import PRESERVE, structural_schema
from ratline.kube.resources import CRD, is_builtin_group, split_api_version

SHORT_NAMES: Mapping[str, tuple[str, ...]] = {
    "VirtualService": ("vs",),
    "DestinationRule": ("dr",),
    "Gateway": ("gw",),
    "ServiceEntry": ("se",),
    "WorkloadEntry": ("we",),
    "WorkloadGroup": ("wg",),
    "AuthorizationPolicy": ("ap",),
    "PeerAuthentication": ("pa",),
    "RequestAuthentication": ("ra",),
    "Telemetry": ("telemetry",),
}
"""Istio's short names (kinds without one get none)."""
API_APPROVED = "api-approved.kubernetes.io"
UNAPPROVED = "unapproved, Ratline's CRDs of the Gateway API kinds it reads"
"""The API server refuses a CRD of a `*.k8s.io` group without this annotation; a value
starting `unapproved` is accepted (the Gateway API project's CRDs name their approval)."""
SHORT_NAMES_GROUPS = frozenset({"networking.istio.io", "security.istio.io", "telemetry.istio.io"})


def plural(kind: str) -> str:
    """The resource name of a kind: `virtualservices`, `serviceentries`, `telemetries`."""
    lower = kind.lower()
    if lower.endswith("y") and lower[-2:-1] not in ("a", "e", "i", "o", "u"):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


def is_ratline_group(group: str) -> bool:
    """Groups Ratline defines CRDs for: Istio's and its own, not Kubernetes' (`*.k8s.io`)."""
    return not is_builtin_group(group) and not group.endswith("k8s.io")


def crd_kinds(kinds: Mapping[str, KindInfo] = KINDS) -> list[KindInfo]:
    """The kinds Ratline ships a CRD for, by kind name."""
    return sorted(
        (i for i in kinds.values() if is_ratline_group(split_api_version(i.api_versions[0])[0])),
        key=lambda i: i.kind,
    )


def custom_resource_definition(info: KindInfo) -> dict[str, Any]:
    group = split_api_version(info.api_versions[0])[0]
    kind = info.written_kind
    name = plural(kind)
    category = group.replace(".", "-")
    spec_schema = structural_schema(info.spec_model)
    properties: dict[str, Any] = {"spec": spec_schema, "status": dict(PRESERVE)}
    for other in sorted(info.other_fields):
        properties[other] = {"x-kubernetes-preserve-unknown-fields": True}
    schema = {"type": "object", "properties": properties}
    versions = []
    for index, api_version in enumerate(info.api_versions):
        versions.append(
            {
                "name": split_api_version(api_version)[1],
                "served": True,
                "storage": index == 0,
                "schema": {"openAPIV3Schema": schema},
                "subresources": {"status": {}},
            }
        )
    names: dict[str, Any] = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": name,
        "singular": kind.lower(),
        "categories": ["istio-io", category] if group.endswith("istio.io") else [category],
    }
    if group in SHORT_NAMES_GROUPS and kind in SHORT_NAMES:
        names["shortNames"] = list(SHORT_NAMES[kind])
    return {
        "apiVersion": CRD.api_version,
        "kind": CRD.kind,
        "metadata": {"name": f"{name}.{group}", "labels": {"app.kubernetes.io/part-of": "ratline"}},
        "spec": {
            "group": group,
            "names": names,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "versions": versions,
        },
    }


def all_crds(kinds: Mapping[str, KindInfo] = KINDS) -> list[dict[str, Any]]:
    return [custom_resource_definition(info) for info in crd_kinds(kinds)]


def gateway_api_crds() -> list[dict[str, Any]]:
    """CRDs of the Gateway API kinds Ratline reads, from Ratline's schemas: for a cluster
    without the Gateway API project's own CRDs (which work as well, and are what a
    cluster shared with other implementations should install)."""
    crds = []
    for info in sorted(GATEWAY_API.values(), key=lambda i: i.written_kind):
        crd = custom_resource_definition(info)
        crd["metadata"]["annotations"] = {API_APPROVED: UNAPPROVED}
        crd["spec"]["names"]["categories"] = ["gateway-api"]
        crds.append(crd)
    return crds
