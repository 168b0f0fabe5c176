"""The Bookinfo-on-Kubernetes mesh written for the local runtime, to compare their xDS.

`with_namespace` puts Istio's manifests into a namespace of a mesh directory,
`reported_instance` is what a runner would report for a pod as kubectl shows it, and
`first_difference` says where the two control planes' config dumps differ.
"""

from __future__ import annotations

from typing import Any

import yaml


def with_namespace(text: str, namespace: str, drop_kinds: tuple[str, ...] = ()) -> str:
    docs = [d for d in yaml.safe_load_all(text) if d and d.get("kind") not in drop_kinds]
    for doc in docs:
        doc.setdefault("metadata", {})["namespace"] = namespace
    return yaml.safe_dump_all(docs)


def reported_instance(pod: dict[str, Any], outbound_port: int) -> dict[str, Any]:
    """What a runner would report for this pod, written from the pod as kubectl shows it."""
    meta, spec, status = pod["metadata"], pod["spec"], pod["status"]
    owner = meta["ownerReferences"][0]["name"]
    workload = owner.rsplit("-", 1)[0]  # the ReplicaSet's Deployment
    router = meta.get("annotations", {}).get("inject.istio.io/templates") == "gateway"
    ports = [
        {
            "container_port": p["containerPort"],
            "app_port": p["containerPort"],
            "name": p.get("name", ""),
            "protocol": p.get("protocol", "TCP"),
        }
        for c in spec["containers"]
        if c["name"] != "istio-proxy"
        for p in c.get("ports", ())
    ]
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
    return {
        "name": meta["name"],
        "namespace": meta["namespace"],
        "workload": workload,
        "labels": meta["labels"],
        "service_account": spec["serviceAccountName"],
        "address": status["podIP"],
        "ports": ports,
        "sidecar": None if router else {"outbound_port": outbound_port, "admin_port": 15000},
        "kind": "router" if router else "sidecar",
        "healthy": ready,
        "locality": "region-a/zone-a",
    }


def first_difference(
    differing: list[tuple[str, str]], kube: dict[Any, list[str]], ours: dict[Any, list[str]]
) -> str:
    """Which (node, type) pairs differ, and the first resource that differs in the first one."""
    key = differing[0]
    only_kube = sorted(set(kube[key]) - set(ours[key]))
    only_local = sorted(set(ours[key]) - set(kube[key]))
    return (
        f"{len(differing)} (node, type) pairs differ, e.g. {key}: "
        f"only from Kubernetes {only_kube[:1]}, only from the local sources {only_local[:1]}"
    )
