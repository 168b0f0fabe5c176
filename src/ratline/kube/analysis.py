"""The analyzers for a cluster: Istio's (`ratline.api.analyze`) with pods as the workloads.

In a cluster the workloads a Service selects are pods, not Ratline `Workload` resources:
the local mode's "no Workload has the labels" finding becomes "no pod has the labels",
checked against the registry's instances.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ratline.api.analyze import SERVICE_SELECTS_NO_WORKLOAD, analyze
from ratline.api.envelope import Resource
from ratline.api.errors import ConfigMessage, Severity

PodLabels = tuple[str, Mapping[str, str]]
"""(namespace, labels) of one pod."""


def analyze_cluster(
    resources: Sequence[Resource[Any]], mesh_config: Any, pods: Iterable[PodLabels]
) -> list[ConfigMessage]:
    found = [m for m in analyze(resources, mesh_config) if m.code != SERVICE_SELECTS_NO_WORKLOAD]
    pods = list(pods)
    for resource in resources:
        selector = getattr(resource.spec, "selector", None) if resource.kind == "Service" else None
        if not selector:
            continue
        if any(
            namespace == resource.namespace and all(labels.get(k) == v for k, v in selector.items())
            for namespace, labels in pods
        ):
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
