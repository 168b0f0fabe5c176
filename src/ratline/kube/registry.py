"""`KubeRegistry`: the cluster's pods as a `ratline.registry.registry.ServiceRegistry`.

Three watches: Pods (the instances, see `ratline.kube.pods`), Nodes (their topology
labels give each pod's locality) and EndpointSlices (which pods are ready, as the
controller-manager publishes them). Instances are rebuilt only for the pods a change
touches; an unchanged pod keeps the very same `WorkloadInstance`, which is what lets a
push cost what changed rather than the mesh (see `model.build`).

Services themselves are config (`KubeConfigStore`): the model joins them with these
instances by selector, as it does in local mode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from ratline.kube.connection import KubeConnection
from ratline.kube.informer import Informer
from ratline.kube.pods import (
    PodRecord,
    endpoint_slice_readiness,
    is_instance,
    node_locality,
    pod_instance,
    pod_record,
)
from ratline.kube.resources import ENDPOINT_SLICE, NODE, POD, ResourceType
from ratline.kube.watch import Change, ObjectKey
from ratline.registry.instances import WorkloadInstance

Readiness = tuple[tuple[str, bool], ...]


class KubeRegistry:
    """Instances from a Kubernetes API server, kept current by watches."""

    def __init__(self, connection: KubeConnection, outbound_port: int, admin_port: int) -> None:
        self.connection = connection
        self.outbound_port = outbound_port
        self.admin_port = admin_port
        self._pods: dict[ObjectKey, PodRecord] = {}
        self._localities: dict[str, str] = {}
        self._slices: dict[ObjectKey, Readiness] = {}
        self._slice_ready: dict[ObjectKey, dict[ObjectKey, bool]] = {}
        """Pod → (slice → whether that slice lists it ready)."""
        self._instances: dict[ObjectKey, WorkloadInstance] = {}
        self._list: list[WorkloadInstance] | None = None
        self._generation = 0
        self._callbacks: list[Callable[[], None]] = []
        self._label_callbacks: list[Callable[[], None]] = []
        self.informers: list[Informer[Any]] = [
            self._informer(NODE, node_locality, self._on_nodes),
            self._informer(ENDPOINT_SLICE, endpoint_slice_readiness, self._on_slices),
            self._informer(POD, pod_record, self._on_pods),
        ]
        self._tasks: list[asyncio.Task[None]] = []

    def _informer(
        self,
        resource: ResourceType,
        transform: Callable[[Mapping[str, Any]], Any],
        on_changes: Callable[[list[Change[Any]]], None],
    ) -> Informer[Any]:
        return Informer(self.connection, resource, transform, on_changes)

    # ---- ServiceRegistry -------------------------------------------------------------

    def instances(self) -> list[WorkloadInstance]:
        if self._list is None:
            self._list = [self._instances[k] for k in sorted(self._instances)]
        return self._list

    @property
    def version(self) -> str:
        return f"p{self._generation}"

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def subscribe_labels(self, callback: Callable[[], None]) -> None:
        """Called when an instance appears, goes, or changes its labels (what the
        analyzers' Service-selects-no-pod check reads), not on readiness changes."""
        self._label_callbacks.append(callback)

    def start(self) -> None:
        """Start the watches (`wait_synced` waits for their first lists)."""
        for informer in self.informers:
            self._tasks.append(
                asyncio.create_task(informer.run(), name=f"watch {informer.resource}")
            )

    async def wait_synced(self) -> None:
        for informer in self.informers:
            await informer.synced.wait()

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    async def watch(self) -> None:
        """Until cancelled; stops the watches `start` began."""
        try:
            await asyncio.Event().wait()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ---- changes ---------------------------------------------------------------------

    def _on_nodes(self, changes: list[Change[str]]) -> None:
        names = set()
        for change in changes:
            name = change.key[1]
            if change.new is None:
                self._localities.pop(name, None)
            else:
                self._localities[name] = change.new
            names.add(name)
        self._rebuild([k for k, pod in self._pods.items() if pod.node_name in names])

    def _on_slices(self, changes: list[Change[Readiness]]) -> None:
        touched: set[ObjectKey] = set()
        for change in changes:
            namespace = change.key[0]
            for name, _ready in change.old or ():
                pod = (namespace, name)
                self._slice_ready.get(pod, {}).pop(change.key, None)
                touched.add(pod)
            for name, ready in change.new or ():
                pod = (namespace, name)
                self._slice_ready.setdefault(pod, {})[change.key] = ready
                touched.add(pod)
        for pod in touched:
            if not self._slice_ready.get(pod):
                self._slice_ready.pop(pod, None)
        self._rebuild(touched)

    def _on_pods(self, changes: list[Change[PodRecord]]) -> None:
        for change in changes:
            if change.new is None:
                self._pods.pop(change.key, None)
            else:
                self._pods[change.key] = change.new
        self._rebuild(c.key for c in changes)

    def _ready(self, key: ObjectKey, pod: PodRecord) -> bool:
        slices = self._slice_ready.get(key)
        if slices:
            return any(slices.values())
        return pod.ready

    def _rebuild(self, keys: Any) -> None:
        changed = False
        labels_changed = False
        for key in keys:
            pod = self._pods.get(key)
            old = self._instances.get(key)
            if pod is None or not is_instance(pod):
                gone = self._instances.pop(key, None) is not None
                changed |= gone
                labels_changed |= gone
                continue
            new = pod_instance(
                pod,
                self._localities.get(pod.node_name, ""),
                self._ready(key, pod),
                self.outbound_port,
                self.admin_port,
            )
            if old != new:
                self._instances[key] = new
                changed = True
                labels_changed |= old is None or old.labels != new.labels
        if changed:
            self._list = None
            self._generation += 1
            for callback in self._callbacks:
                callback()
        if labels_changed:
            for callback in self._label_callbacks:
                callback()
