"""Make-before-break pushes: the stages a config change goes through on one proxy.

Envoy applies each type on its own, so pushing a new config in one go can route to a
cluster that is not warm yet, or remove a cluster a route still names (503, no cluster).
A change is therefore pushed in up to three stages, each sent once the proxy has ACKed
the one before:

1. the *dependency* types (clusters, endpoints, secrets) as the union of old and new,
   the rest unchanged: new clusters warm, nothing is removed;
2. the new listeners and routes, clusters still the union: traffic moves;
3. the new config exactly: clusters no route names any more are removed.

Pure functions over `Resources`; the server decides when a stage is acknowledged.
"""

from __future__ import annotations

from collections.abc import Mapping

from ratline.xds.resource_set import ResourceSet, union
from ratline.xds.types import CLUSTER, ENDPOINT, SECRET, Resources

DEPENDENCY_TYPES = (CLUSTER, ENDPOINT, SECRET)
"""Types that others refer to by name: added first, removed last."""

Config = Mapping[str, ResourceSet]


def as_config(resources: Resources) -> Config:
    """Resources with every type as a `ResourceSet` (those already one are kept as is)."""
    return {t: ResourceSet.of(by_name) for t, by_name in resources.items()}


def same_config(a: Resources, b: Resources) -> bool:
    """Whether two configs hold the same resources at the same versions."""
    if a.keys() != b.keys():
        return False
    return all(ResourceSet.of(a[t]).same_content(ResourceSet.of(b[t])) for t in a)


def _with_dependencies_merged(base: Config, old: Config, new: Config) -> Config:
    merged: dict[str, ResourceSet] = dict(base)
    for type_url in DEPENDENCY_TYPES:
        if type_url in old and type_url in new:
            merged[type_url] = union(old[type_url], new[type_url])
        elif type_url in old or type_url in new:
            merged[type_url] = old.get(type_url) or new[type_url]
    return merged


def push_stages(old: Resources | None, new: Resources) -> list[Config]:
    """The configs to send in turn to go from `old` to `new` (the last one is `new`).

    Costs O(what changed) per proxy when old and new share their bases with other
    proxies' configs (the unions and diffs of shared sets are computed once).
    """
    target = as_config(new)
    if old is None:
        return [target]
    current = as_config(old)
    stages: list[Config] = []
    for stage in (
        _with_dependencies_merged(current, current, target),
        _with_dependencies_merged(target, current, target),
        target,
    ):
        if not same_config(stage, current):
            stages.append(stage)
            current = stage
    return stages
