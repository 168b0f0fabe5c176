"""The analyzers for a cluster: Istio's (`ratline.api.analyze`) with pods as the workloads.

In a cluster the workloads a Service selects are pods, not Ratline `Workload` resources:
the local mode's "no Workload has the labels" finding becomes "no pod has the labels",
checked against the registry's instances. `analyze_live_cluster` is `ratline analyze -k`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ratline.api.analyze import SERVICE_SELECTS_NO_WORKLOAD, analyze
from ratline.api.envelope import Resource
from ratline.api.errors import ConfigMessage, Severity
from ratline.kube.config_store import KubeConfigStore
from ratline.kube.connection import KubeConnection
from ratline.kube.registry import KubeRegistry

PodLabels = tuple[str, Mapping[str, str]]
"""(namespace, labels) of one pod."""


def analyze_cluster(
    resources: Sequence[Resource[Any]], mesh_config: Any, pods: Iterable[PodLabels]
) -> list[ConfigMessage]:
    found = [m for m in analyze(resources, mesh_config) if m.code != SERVICE_SELECTS_NO_WORKLOAD]
    by_label: dict[tuple[str, str, str], list[Mapping[str, str]]] = {}
    for namespace, labels in pods:
        for key, value in labels.items():
            by_label.setdefault((namespace, key, value), []).append(labels)
    for resource in resources:
        selector = getattr(resource.spec, "selector", None) if resource.kind == "Service" else None
        if not selector:
            continue
        # Only pods with the selector's rarest label can match: O(those), not O(pods).
        candidates = min(
            (by_label.get((resource.namespace, k, v), []) for k, v in selector.items()), key=len
        )
        if any(all(labels.get(k) == v for k, v in selector.items()) for labels in candidates):
            continue
        shown = ", ".join(f"{k}={v}" for k, v in selector.items())
        found.append(
            ConfigMessage(
                f"no pod in namespace {resource.namespace} has the labels {shown}",
                resource.source,
                resource.key,
                "spec.selector",
                Severity.WARNING,
                SERVICE_SELECTS_NO_WORKLOAD,
            )
        )
    return found


async def analyze_live_cluster(
    connection: KubeConnection,
    namespace: str,
    overlay: Sequence[Resource[Any]] = (),
    timeout: float = 60.0,
) -> list[ConfigMessage]:
    """`ratline analyze -k`: list the cluster once (config and pods), put `overlay` (files
    given on the command line) on top, and analyze it all (refused objects included)."""
    store = KubeConfigStore(connection, namespace)
    registry = KubeRegistry(connection, outbound_port=0, admin_port=0)
    await store.start()
    registry.start()
    watching = [asyncio.create_task(store.watch()), asyncio.create_task(registry.watch())]
    try:
        await asyncio.wait_for(asyncio.gather(store.wait_synced(), registry.wait_synced()), timeout)
        by_key = {s.resource.key: s.resource for s in store.stored()}
        by_key.update((r.key, r) for r in overlay)
        pods = [(i.namespace, i.labels) for i in registry.instances()]
        overlaid = {r.key for r in overlay}
        refused = [m for m in store.refused if m.resource not in overlaid]
        return [*refused, *analyze_cluster(list(by_key.values()), store.mesh_config, pods)]
    finally:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
