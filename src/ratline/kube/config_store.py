"""`KubeConfigStore`: the cluster's config as a `ratline.config.store.ConfigStore`.

Every kind `ratline.api.kinds` knows is watched at the apiVersion the API server prefers
among those Ratline accepts (so a kind someone adds there flows from the cluster with no
change here): Istio's kinds (from Ratline's CRDs or Istio's own), the Gateway API's
(`gateway.networking.k8s.io`; its `Gateway` held as `KubernetesGateway`), Services,
ServiceAccounts, Namespaces. Kinds of the same API groups that Ratline does not read yet
(an EnvoyFilter under Istio's CRDs) are watched too, only to be reported. MeshConfig is
the `mesh` key of the ConfigMap `istio` in the control plane's namespace, as in Istio.

Each object is validated as a file's document would be. One that Ratline refuses is
reported (`refused`, `ratline analyze`, its status) and its last good version stays in
force, so bad input changes nothing that was working. CRDs installed later are picked
up: the CustomResourceDefinition watch triggers a new discovery.

Writes go to the cluster with kubectl, as with istiod: `apply` and `delete` refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ratline.api.envelope import Resource, ResourceKey, Source
from ratline.api.errors import ConfigError, ConfigMessage
from ratline.api.kinds import CLUSTER_KINDS, KindInfo
from ratline.api.loader import parse_mesh_config
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.config.store import ApplyResult, DeleteResult, StoredResource
from ratline.kube.connection import KubeApiError, KubeConnection
from ratline.kube.informer import Informer
from ratline.kube.objects import ClusterObject, cluster_object, to_resource
from ratline.kube.resources import CONFIG_MAP, CRD, ResourceType, discover
from ratline.kube.watch import Change

log = logging.getLogger("ratline.kube.config")

MESH_CONFIG_MAP = "istio"
REDISCOVER_TRIES = 30
MESH_CONFIG_KEY = "mesh"
ORIGIN = "cluster"
"""`StoredResource.origin` of everything this store holds."""
READ_ONLY = (
    "this control plane reads its config from the Kubernetes cluster: "
    "change it with kubectl (kubectl apply -f FILE / kubectl delete -f FILE)"
)


class KubeConfigStore:
    """Config from a Kubernetes API server, kept current by watches."""

    def __init__(
        self,
        connection: KubeConnection,
        namespace: str,
        kinds: Mapping[str, KindInfo] = CLUSTER_KINDS,
    ) -> None:
        self.connection = connection
        self.namespace = namespace
        """The control plane's namespace (Istio's `istio-system`): where MeshConfig is."""
        self.kinds = dict(kinds)
        self.types: dict[str, ResourceType] = {}
        """Kind → the resource type watched for it."""
        self._informers: dict[str, Informer[Any]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._objects: dict[ResourceKey, ClusterObject] = {}
        self._resources: dict[ResourceKey, Resource[Any]] = {}
        self._refused: dict[ResourceKey, list[ConfigMessage]] = {}
        self._sorted: list[StoredResource] | None = None
        self._mesh_config: MeshConfig = MeshConfig()
        self._mesh_messages: list[ConfigMessage] = []
        self._generation = 0
        self._callbacks: list[Callable[[], None]] = []
        self._object_callbacks: list[Callable[[], None]] = []
        self._changed = asyncio.Event()
        self._rediscover = asyncio.Event()

    # ---- ConfigStore -----------------------------------------------------------------

    @property
    def version(self) -> str:
        return f"k{self._generation}"

    @property
    def mesh_config(self) -> MeshConfig:
        return self._mesh_config

    @property
    def refused(self) -> list[ConfigMessage]:
        """Why objects in the cluster are not (or only in an older version) in force."""
        found = [m for key in sorted(self._refused) for m in self._refused[key]]
        return self._mesh_messages + found

    def stored(self, kind: str | None = None) -> list[StoredResource]:
        if self._sorted is None:
            self._sorted = [
                StoredResource(self._resources[key], ORIGIN) for key in sorted(self._resources)
            ]
        if kind is None:
            return self._sorted
        return [s for s in self._sorted if s.resource.kind == kind]

    def objects(self) -> Mapping[ResourceKey, ClusterObject]:
        """Every object as last seen in the cluster, read or refused (for status)."""
        return self._objects

    def apply(self, text: str, filename: str | None) -> ApplyResult:
        raise ConfigError([ConfigMessage(READ_ONLY, Source(filename))])

    def delete(self, text: str, filename: str | None) -> DeleteResult:
        raise ConfigError([ConfigMessage(READ_ONLY, Source(filename))])

    def subscribe(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def subscribe_objects(self, callback: Callable[[], None]) -> None:
        """Called whenever an object changes other than in its status, refused ones too
        (which change nothing in force, so `subscribe`'s callbacks are not called)."""
        self._object_callbacks.append(callback)

    async def wait_changed(self, since: str, timeout: float) -> None:
        """Return when the version differs from `since`, or after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.version == since:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def watch(self) -> None:
        """Follow the cluster until cancelled (`start` must have run)."""
        try:
            while True:
                await self._rediscover.wait()
                self._rediscover.clear()
                # A CRD just Established may not be served for a moment: look again
                # (every second, a bounded number of times) until its kind is.
                for _ in range(REDISCOVER_TRIES):
                    try:
                        await self._start_informers()
                    except KubeApiError as exc:
                        log.warning("discovery failed: %s; retrying", exc)
                    if not self._unserved_crd_kinds():
                        break
                    await asyncio.sleep(1.0)
        finally:
            await self._stop_informers()

    def _unserved_crd_kinds(self) -> set[str]:
        """Kinds Ratline reads whose CRD exists but which discovery did not find served."""
        crds = self._informers.get("CustomResourceDefinition")
        written = {
            (_group_of(version), info.written_kind): kind
            for kind, info in self.kinds.items()
            for version in info.api_versions
        }
        found = set()
        for crd in crds.objects.values() if crds is not None else ():
            spec = crd.get("spec") or {}
            names = spec.get("names") or {}
            kind = written.get((str(spec.get("group")), str(names.get("kind"))))
            if kind is not None and kind not in self.types:
                found.add(kind)
        return found

    # ---- starting --------------------------------------------------------------------

    async def start(self) -> None:
        """Discover the served kinds and start watching them (KubeApiError if the server
        cannot be reached). `wait_synced` then waits for the first lists."""
        self._watch_task("CustomResourceDefinition", CRD, self._on_crds)
        self._watch_task("ConfigMap", CONFIG_MAP, self._on_config_maps, self.namespace)
        await self._start_informers()

    async def wait_synced(self) -> None:
        """Until every watched kind has been listed once."""
        for informer in list(self._informers.values()):
            await informer.synced.wait()

    def synced(self) -> bool:
        return all(i.synced.is_set() for i in self._informers.values())

    @property
    def informers(self) -> list[Informer[Any]]:
        return list(self._informers.values())

    async def _start_informers(self) -> None:
        found = await discover(self.connection, self.kinds.values())
        served = set(found.known) | {r.kind for r in found.unknown}
        for kind in [k for k in self.types if k not in served]:
            self._forget_kind(kind)
        for kind, resource in found.known.items():
            self._watch_kind(kind, resource, self.kinds[kind])
        for resource in found.unknown:
            self._watch_kind(resource.kind, resource, None)

    def _forget_kind(self, kind: str) -> None:
        """A kind no longer served (its CRD was deleted): its objects are gone too."""
        log.info("%s is no longer served; its objects are removed", kind)
        task = self._tasks.pop(kind, None)
        if task is not None:
            task.cancel()
        self._informers.pop(kind, None)
        self.types.pop(kind, None)
        gone = [key for key in self._objects if key.kind == kind]
        for key in gone:
            self._objects.pop(key, None)
            self._refused.pop(key, None)
            self._resources.pop(key, None)
        if gone:
            self._bump()

    def _watch_kind(self, kind: str, resource: ResourceType, info: KindInfo | None) -> None:
        if self.types.get(kind) == resource:
            return
        old = self._tasks.pop(kind, None)
        if old is not None:
            old.cancel()
        self.types[kind] = resource
        api_version = resource.api_version

        def transform(obj: Mapping[str, Any]) -> ClusterObject:
            return cluster_object(obj, kind, api_version, info)

        self._watch_task(kind, resource, self._on_objects, transform=transform)

    def _watch_task(
        self,
        name: str,
        resource: ResourceType,
        on_changes: Callable[[list[Change[Any]]], None],
        namespace: str | None = None,
        transform: Callable[[Mapping[str, Any]], Any] = dict,
    ) -> None:
        informer: Informer[Any] = Informer(
            self.connection, resource, transform, on_changes, namespace=namespace
        )
        self._informers[name] = informer
        self._tasks[name] = asyncio.create_task(informer.run(), name=f"watch {resource}")

    async def _stop_informers(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---- changes ---------------------------------------------------------------------

    def _on_crds(self, changes: list[Change[Any]]) -> None:
        groups = {_group_of(v) for info in self.kinds.values() for v in info.api_versions}
        for change in changes:
            crd = change.new or change.old or {}
            if (crd.get("spec") or {}).get("group") in groups:
                self._rediscover.set()

    def _on_config_maps(self, changes: list[Change[Any]]) -> None:
        for change in changes:
            if change.key != (self.namespace, MESH_CONFIG_MAP):
                continue
            data = ((change.new or {}).get("data") or {}) if change.new else {}
            shown = f"ConfigMap {self.namespace}/{MESH_CONFIG_MAP} ({MESH_CONFIG_KEY})"
            mesh_config, messages = parse_mesh_config(str(data.get(MESH_CONFIG_KEY) or ""), shown)
            self._mesh_messages = messages
            if messages:
                for message in messages:
                    log.error("MeshConfig refused (the previous one stays): %s", message)
                continue
            if mesh_config != self._mesh_config:
                self._mesh_config = mesh_config
                self._bump()

    def _on_objects(self, changes: list[Change[ClusterObject]]) -> None:
        changed = False
        touched = False
        for change in changes:
            obj = change.new or change.old
            assert obj is not None
            key = ResourceKey(obj.kind, change.key[0], change.key[1])
            if change.new is None:
                self._objects.pop(key, None)
                self._refused.pop(key, None)
                changed |= self._resources.pop(key, None) is not None
                touched = True
                continue
            self._objects[key] = change.new
            if change.old is not None and change.old.same_config(change.new):
                continue  # only the status changed (our own write, most likely)
            touched = True
            resource, messages = to_resource(change.new)
            if resource is None:
                self._refused[key] = messages
                for message in messages:
                    log.warning("not in force: %s", message)
                continue
            self._refused.pop(key, None)
            self._resources[key] = resource
            changed = True
        if changed:
            self._bump()
        if touched:
            for callback in self._object_callbacks:
                callback()

    def _bump(self) -> None:
        self._sorted = None
        self._generation += 1
        self._changed.set()
        for callback in self._callbacks:
            callback()


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]
