"""The control plane's identity in a cluster: its ServiceAccount and what RBAC grants it.

Read: every kind it watches (pods, nodes, namespaces, services, service accounts,
secrets (gateways' and DestinationRules' `credentialName`s, as istiod reads them),
EndpointSlices, CRDs, Istio's and Ratline's custom resources). Write: custom resources'
status, its webhook configuration, TokenReviews (certificate requests), the Services,
ServiceAccounts and Deployments of Gateway API Gateways (Istio's automated deployment),
and in its own namespace the leader Lease, the CA Secret and reading the MeshConfig
ConfigMap.
`ratline manifest rbac` prints these; the tests run the control plane with exactly them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ratline.api.kinds import KINDS, KindInfo
from ratline.kube.crds import crd_kinds
from ratline.kube.resources import split_api_version

NAME = "ratline-controlplane"
SERVICE_ACCOUNT = "istiod"
READ = ["get", "list", "watch"]
WRITE = ["get", "list", "watch", "create", "update", "patch", "delete"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


def rbac_manifests(namespace: str, kinds: Mapping[str, KindInfo] = KINDS) -> list[dict[str, Any]]:
    groups = sorted({split_api_version(i.api_versions[0])[0] for i in crd_kinds(kinds)})
    groups += [g for g in ("gateway.networking.k8s.io",) if g not in groups]
    subject = {"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}
    cluster_rules = [
        _rule([""], ["pods", "nodes", "namespaces", "services", "serviceaccounts", "secrets"],
              READ),
        _rule(["discovery.k8s.io"], ["endpointslices"], READ),
        _rule(["apiextensions.k8s.io"], ["customresourcedefinitions"], READ),
        _rule(groups, ["*"], READ),
        _rule(groups, ["*/status"], ["get", "patch", "update"]),
        _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
        # Gateway API Gateways' automated deployments (`ratline.kube.gateway_deployments`).
        _rule([""], ["services", "serviceaccounts"], WRITE),
        _rule(["apps"], ["deployments"], WRITE),
        # The mesh root in every namespace (`istio-ca-root-cert`, server-side applied).
        _rule([""], ["configmaps"], ["get", "list", "watch", "create", "update", "patch"]),
        _rule(
            ["admissionregistration.k8s.io"],
            ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"],
            ["get", "list", "watch", "create", "update", "patch"],
        ),
    ]
    namespaced_rules = [
        _rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"]),
        _rule([""], ["secrets"], ["get", "create"]),
        _rule([""], ["configmaps"], READ),
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": SERVICE_ACCOUNT, "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME},
            "rules": cluster_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [subject],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": NAME, "namespace": namespace},
            "rules": namespaced_rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": NAME, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
            "subjects": [subject],
        },
    ]
