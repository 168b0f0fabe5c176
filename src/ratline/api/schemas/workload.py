"""Ratline's own `ratline.dev/v1alpha1` Workload: a process to run with a sidecar.

The local runner starts `replicas` copies of `command`, each with its own sidecar; the
Workload's `metadata.labels` are its instances' labels (what Service selectors,
DestinationRule subsets and Gateway selectors match).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ratline.api.schemas.common import NonEmptyStr, NonNegativeInt, PortNumber, Seq, Spec


class ContainerPort(Spec):
    """A port the workload's process listens on (it receives the real one in `PORT`)."""

    name: str | None = None
    container_port: PortNumber
    protocol: Literal["TCP", "UDP", "SCTP"] = "TCP"


class WorkloadSpec(Spec):
    """What to run, how many copies, and as whom."""

    service_account: NonEmptyStr = "default"
    replicas: NonNegativeInt = 1
    command: Seq[NonEmptyStr] = Field(min_length=1)
    env: dict[str, str] = {}
    ports: Seq[ContainerPort] = ()
    working_dir: str | None = None
    restart_policy: Literal["Always", "OnFailure", "Never"] = "Always"
    """As a Kubernetes Pod's: restart the app always, only after a failure, or never.
    An app that is not restarted takes its sidecar down with it (a job)."""

    @model_validator(mode="after")
    def _unique_ports(self) -> WorkloadSpec:
        numbers = [p.container_port for p in self.ports]
        if len(set(numbers)) != len(numbers):
            raise ValueError("duplicate containerPort")
        names = [p.name for p in self.ports if p.name]
        if len(set(names)) != len(names):
            raise ValueError("duplicate port name")
        return self


__all__ = ["ContainerPort", "WorkloadSpec"]
