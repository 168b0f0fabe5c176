"""Leader election with a coordination.k8s.io Lease, so two replicas never both write.

Every replica serves xDS; only the leader writes to the cluster (status, the webhook
configuration). `LeaseElection` decides, sans IO, from the Lease as read and the local
clock: create it when absent, renew it while holding it, take it over when its holder
has not renewed it for a whole lease duration as measured here (the holder's timestamps
are never compared with this clock, as client-go does), else wait. `LeaderElector` is
the adapter: it reads and writes the Lease (updates carry the resourceVersion read, so
two candidates cannot both win), runs the leader's work while it leads, cancels it as
soon as a renewal fails past the deadline, and releases the Lease on a clean stop so a
successor need not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ratline.kube.connection import KubeApiError, KubeConnection
from ratline.kube.resources import LEASE

log = logging.getLogger("ratline.kube.leader")

LEASE_NAME = "ratline-leader"


class Action(StrEnum):
    CREATE = "create"
    RENEW = "renew"
    TAKE_OVER = "take-over"
    WAIT = "wait"


def micro_time(moment: float) -> str:
    """A Lease MicroTime: RFC 3339 with microseconds."""
    when = datetime.datetime.fromtimestamp(moment, datetime.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaseElection:
    """The decision of one candidate, sans IO."""

    identity: str
    duration_s: float
    _observed: tuple[str, str] | None = None
    """(holder, renewTime) as last read, and when (monotonic) it was first read so."""
    _observed_at: float = 0.0

    def decide(self, lease: Mapping[str, Any] | None, now: float) -> Action:
        """What to do given the Lease as just read (None: absent) at monotonic `now`."""
        if lease is None:
            return Action.CREATE
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, now
        if holder == self.identity:
            return Action.RENEW
        duration = float(spec.get("leaseDurationSeconds") or self.duration_s)
        if not holder or now - self._observed_at >= duration:
            return Action.TAKE_OVER
        return Action.WAIT

    def spec(self, lease: Mapping[str, Any] | None, action: Action, wall: float) -> dict[str, Any]:
        """The Lease spec to write for `action` (CREATE, RENEW or TAKE_OVER)."""
        old = dict((lease or {}).get("spec") or {})
        transitions = int(old.get("leaseTransitions") or 0)
        acquired = old.get("acquireTime") if action is Action.RENEW else micro_time(wall)
        if action is Action.TAKE_OVER:
            transitions += 1
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.duration_s)),
            "acquireTime": acquired or micro_time(wall),
            "renewTime": micro_time(wall),
            "leaseTransitions": transitions,
        }


class LeaderElector:
    """Runs `lead()` while this replica holds the Lease."""

    def __init__(
        self,
        connection: KubeConnection,
        namespace: str,
        identity: str,
        duration_s: float,
        lead: Callable[[], Coroutine[Any, Any, None]],
        name: str = LEASE_NAME,
    ) -> None:
        self.connection = connection
        self.namespace = namespace
        self.name = name
        self.election = LeaseElection(identity, duration_s)
        self.lead = lead
        self.leading = False
        self.transitions = 0
        """How often this replica became the leader."""
        self._task: asyncio.Task[None] | None = None
        self._lease: dict[str, Any] | None = None
        self._retry_s = max(0.2, duration_s / 5)
        self._deadline_s = duration_s * 2 / 3

    @property
    def identity(self) -> str:
        return self.election.identity

    async def _read(self) -> dict[str, Any] | None:
        try:
            lease: dict[str, Any] = await self.connection.get(
                LEASE.object_path(self.namespace, self.name)
            )
            return lease
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def _write(self, lease: dict[str, Any] | None, spec: dict[str, Any]) -> dict[str, Any]:
        if lease is None:
            body = {
                "apiVersion": LEASE.api_version,
                "kind": LEASE.kind,
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": spec,
            }
            created: dict[str, Any] = await self.connection.request(
                "POST", LEASE.collection_path(self.namespace), body=body
            )
            return created
        body = {**lease, "spec": spec}  # metadata.resourceVersion makes it conditional
        updated: dict[str, Any] = await self.connection.request(
            "PUT", LEASE.object_path(self.namespace, self.name), body=body
        )
        return updated

    async def _attempt(self) -> bool:
        """One round: True when this replica holds the Lease afterwards."""
        lease = await self._read()
        action = self.election.decide(lease, time.monotonic())
        if action is Action.WAIT:
            return False
        self._lease = await self._write(lease, self.election.spec(lease, action, time.time()))
        return True

    async def run(self) -> None:
        """Until cancelled; then the Lease is released if held."""
        last_renewal = 0.0
        try:
            while True:
                try:
                    held = await self._attempt()
                    if held:
                        last_renewal = time.monotonic()
                except KubeApiError as exc:
                    held = False
                    if exc.status != 409:  # a conflict: someone else wrote first
                        log.warning("lease %s/%s: %s", self.namespace, self.name, exc)
                    if self.leading and time.monotonic() - last_renewal < self._deadline_s:
                        held = True  # still within the renew deadline
                if held and not self.leading:
                    self._start_leading()
                elif not held and self.leading:
                    await self._stop_leading()
                await asyncio.sleep(self._retry_s)
        finally:
            await self._stop_leading()
            await self._release()

    def _start_leading(self) -> None:
        log.info("%s is the leader (lease %s/%s)", self.identity, self.namespace, self.name)
        self.leading = True
        self.transitions += 1
        self._task = asyncio.create_task(self.lead(), name="leader work")

    async def _stop_leading(self) -> None:
        if self.leading:
            log.info("%s is no longer the leader", self.identity)
        self.leading = False
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _release(self) -> None:
        lease = self._lease
        if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        spec = {**lease["spec"], "holderIdentity": "", "leaseDurationSeconds": 1}
        with contextlib.suppress(KubeApiError, asyncio.CancelledError):
            await self._write(lease, spec)
        self._lease = None
