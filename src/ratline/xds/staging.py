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

from ratline.xds.types import CLUSTER, ENDPOINT, SECRET, Resources, VersionedResource

DEPENDENCY_TYPES = (CLUSTER, ENDPOINT, SECRET)
"""Types that others refer to by name: added first, removed last."""


def _fingerprint(resources: Resources) -> dict[str, dict[str, str]]:
    return {t: {n: r.version for n, r in by_name.items()} for t, by_name in resources.items()}


def same_config(a: Resources, b: Resources) -> bool:
    """Whether two configs hold the same resources at the same versions."""
    return _fingerprint(a) == _fingerprint(b)


def _with_dependencies_merged(base: Resources, old: Resources, new: Resources) -> Resources:
    merged: dict[str, Mapping[str, VersionedResource]] = dict(base)
    for type_url in DEPENDENCY_TYPES:
        if type_url in old or type_url in new:
            merged[type_url] = {**old.get(type_url, {}), **new.get(type_url, {})}
    return merged


def push_stages(old: Resources | None, new: Resources) -> list[Resources]:
    """The configs to send in turn to go from `old` to `new` (the last one is `new`)."""
    if old is None:
        return [new]
    stages: list[Resources] = []
    current: Resources = old
    for stage in (
        _with_dependencies_merged(old, old, new),
        _with_dependencies_merged(new, old, new),
        new,
    ):
        if not same_config(stage, current):
            stages.append(stage)
            current = stage
    return stages
