"""The instance registry: what each runner says is running.

Runners (the local one today; per-host or Kubernetes ones later) report their whole set
of instances; each report replaces that runner's previous one. `ServiceRegistry` is the
small interface the control plane depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from ratline.registry.instances import WorkloadInstance


class ServiceRegistry(Protocol):
    """What the control plane needs of a registry of instances."""

    def instances(self) -> list[WorkloadInstance]: ...

    @property
    def version(self) -> str:
        """Changes whenever `instances()` does."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> None: ...

    async def watch(self) -> None:
        """Keep the registry current with its source until cancelled (returns at once
        when the source pushes, as runners' reports do)."""
        ...


class ReportedInstances:
    """Instances as reported by runners over the admin API."""

    def __init__(self) -> None:
        self._by_runner: dict[str, tuple[WorkloadInstance, ...]] = {}
        self._callbacks: list[Callable[[], None]] = []
        self._generation = 0

    @property
    def version(self) -> str:
        """Changes whenever any runner's instances do (a counter, not a digest: hashing
        every instance on each report cost O(mesh) per endpoint change)."""
        return f"r{self._generation}"

    def report(self, runner: str, instances: Iterable[WorkloadInstance]) -> bool:
        """Replace what `runner` reported; True when anything changed."""
        new = tuple(sorted(instances, key=lambda i: i.node_id))
        if self._by_runner.get(runner) == new:
            return False
        self._by_runner[runner] = new
        self._generation += 1
        for callback in self._callbacks:
            callback()
        return True

    def instances(self) -> list[WorkloadInstance]:
        return [i for group in self._by_runner.values() for i in group]

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    async def watch(self) -> None:
        """Nothing to follow: runners push their reports through the admin API."""
