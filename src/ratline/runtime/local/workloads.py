"""Workload resources as the runner needs them, and what to start or stop: pure functions.

The runner reads raw Workload documents from the control plane's admin API (already
validated there) and turns them into `InstanceSpec`s, one per replica. Reconciling is a
diff of specs by instance key: new → start, gone → stop, changed → restart.

The Workload schema is `ratline.api.schemas.workload.WorkloadSpec`; the documents are
validated again here with it, so a document the runner cannot use is reported, not run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from ratline.api.envelope import DEFAULT_NAMESPACE
from ratline.api.schemas.workload import WorkloadSpec as WorkloadSchema

WORKLOAD_KIND = "Workload"


@dataclass(frozen=True)
class ContainerPort:
    container_port: int
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class WorkloadSpec:
    """What one replica of a Workload runs (everything but the replica count)."""

    name: str
    namespace: str
    command: tuple[str, ...]
    working_dir: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    ports: tuple[ContainerPort, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    service_account: str = "default"
    restart_policy: str = "Always"
    """Always | OnFailure | Never, as a Kubernetes Pod's."""
    source: str = field(default="", compare=False)
    """The file it comes from (of the mesh directory, or the one applied; "" if unknown)."""

    def describe(self) -> str:
        """`Workload default/reviews-v2 (reviews.yaml)`, for error messages."""
        where = f" ({self.source})" if self.source else ""
        return f"Workload {self.namespace}/{self.name}{where}"

    @property
    def env_map(self) -> dict[str, str]:
        return dict(self.env)

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True)
class InstanceSpec:
    """One replica to run: `reviews-v2-0` of Workload `reviews-v2`."""

    name: str
    index: int
    workload: WorkloadSpec = field(compare=True)

    @property
    def namespace(self) -> str:
        return self.workload.namespace

    @property
    def key(self) -> InstanceKey:
        return (self.workload.namespace, self.name)


InstanceKey = tuple[str, str]
"""(namespace, instance name)."""


class WorkloadFormatError(ValueError):
    """A Workload document the runner cannot run."""


def parse_workload(doc: Mapping[str, Any]) -> tuple[WorkloadSpec, int]:
    """A raw Workload document → (spec, replicas). Raises WorkloadFormatError."""
    metadata = doc.get("metadata") or {}
    name = metadata.get("name")
    if not name:
        raise WorkloadFormatError("Workload without metadata.name")
    namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
    try:
        spec = WorkloadSchema.model_validate(doc.get("spec") or {})
    except ValidationError as exc:
        raise WorkloadFormatError(f"Workload {namespace}/{name}: {exc}") from None
    labels = metadata.get("labels") or {}
    return (
        WorkloadSpec(
            name=str(name),
            namespace=str(namespace),
            command=tuple(spec.command),
            working_dir=spec.working_dir or None,
            env=tuple(sorted(spec.env.items())),
            ports=tuple(
                ContainerPort(p.container_port, p.name or "", p.protocol) for p in spec.ports
            ),
            labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
            service_account=spec.service_account,
            restart_policy=spec.restart_policy,
        ),
        spec.replicas,
    )


def desired_instances(
    workload_docs: Iterable[Mapping[str, Any]],
    sources: Mapping[tuple[str, str], str] | None = None,
) -> tuple[dict[InstanceKey, InstanceSpec], list[str]]:
    """Every replica the Workloads ask for, by key; plus an error line per unusable doc.

    `sources` names the file of each Workload by (namespace, name), for its errors.
    """
    desired: dict[InstanceKey, InstanceSpec] = {}
    errors: list[str] = []
    for doc in workload_docs:
        try:
            spec, replicas = parse_workload(doc)
        except WorkloadFormatError as exc:
            errors.append(str(exc))
            continue
        source = (sources or {}).get((spec.namespace, spec.name))
        if source:
            spec = replace(spec, source=source)
        for index in range(replicas):
            instance = InstanceSpec(f"{spec.name}-{index}", index, spec)
            desired[instance.key] = instance
    return desired, errors


@dataclass(frozen=True)
class ReconcilePlan:
    start: tuple[InstanceSpec, ...]
    stop: tuple[InstanceKey, ...]
    """Includes changed instances, which are also in `start` (stop first)."""

    @property
    def empty(self) -> bool:
        return not self.start and not self.stop


def plan_reconcile(
    running: Mapping[InstanceKey, InstanceSpec], desired: Mapping[InstanceKey, InstanceSpec]
) -> ReconcilePlan:
    """What to stop and start to go from the running instances to the desired ones."""
    stop = [key for key, spec in running.items() if desired.get(key) != spec]
    start = [spec for key, spec in desired.items() if running.get(key) != spec]
    return ReconcilePlan(start=tuple(sorted(start, key=lambda s: s.key)), stop=tuple(sorted(stop)))

