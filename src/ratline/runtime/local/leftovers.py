"""Processes a runner that died without cleaning up (SIGKILL, OOM, a crash) left running.

Every child runs in its own session, so killing the runner leaves the control plane,
the Envoys and the apps alive. run.json records each one's PID and start time
(`procfs.start_ticks`); a later `ratline up` or `ratline down` finds the ones still
alive and stops them (their process groups: SIGTERM, then SIGKILL), but only a process
whose start time is the recorded one: a PID the kernel has since given to another
program is left alone. A live PID whose start time was not recorded or cannot be read
is not touched either; `ratline down --force` stops those too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratline.agent.process import pid_alive
from ratline.runtime.local import procfs
from ratline.runtime.local.runfile import pids_in_run_info, remove_run_state

REAP_TIMEOUT_S = 5.0
POLL_S = 0.05


@dataclass(frozen=True)
class RecordedProcess:
    """One process a runner started, as run.json recorded it."""

    pid: int
    role: str
    """`control plane`, `gateway istio-ingressgateway-0`, `app reviews-v2-0`, …"""
    start_ticks: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "role": self.role, "start_ticks": self.start_ticks}

    def describe(self) -> str:
        return f"{self.role} (PID {self.pid})"


def recorded_processes(info: Mapping[str, Any]) -> list[RecordedProcess]:
    """The processes run.json names, runner excluded (it is the one that died)."""
    found: list[RecordedProcess] = []
    for entry in info.get("processes") or ():
        pid = entry.get("pid") if isinstance(entry, Mapping) else None
        if isinstance(pid, int) and pid > 0 and pid != info.get("runner_pid"):
            ticks = entry.get("start_ticks")
            found.append(
                RecordedProcess(pid, str(entry.get("role") or "?"),
                                ticks if isinstance(ticks, int) else None)
            )
    return found


@dataclass(frozen=True)
class Leftovers:
    ours: tuple[RecordedProcess, ...] = ()
    """Alive, and the same process the runner started (start time matches)."""
    unverified: tuple[RecordedProcess, ...] = ()
    """Alive, but whether it is the one the runner started cannot be told."""

    def __bool__(self) -> bool:
        return bool(self.ours or self.unverified)


def is_same_process(record: RecordedProcess) -> bool | None:
    """True if the PID is still the recorded process, False if it is gone or another
    one, None if /proc cannot tell (or nothing was recorded)."""
    if not pid_alive(record.pid):
        return False
    if record.start_ticks is None:
        return None
    now = procfs.start_ticks(record.pid)
    if now is None:
        return None
    return now == record.start_ticks


def find_leftovers(records: Iterable[RecordedProcess]) -> Leftovers:
    ours, unverified = [], []
    for record in records:
        same = is_same_process(record)
        if same is True:
            ours.append(record)
        elif same is None:
            unverified.append(record)
    return Leftovers(tuple(ours), tuple(unverified))


def stop_processes(
    records: Iterable[RecordedProcess], *, force: bool = False, timeout_s: float = REAP_TIMEOUT_S
) -> list[RecordedProcess]:
    """SIGTERM each one's process group, SIGKILL what is left after `timeout_s`.

    Each PID is checked again right before every signal; with `force`, one whose
    identity cannot be told is signalled too. Returns the ones that were signalled.
    """

    def still_ours(record: RecordedProcess) -> bool:
        same = is_same_process(record)
        return same is True or (force and same is None)

    targets = [r for r in records if still_ours(r)]
    for record in targets:
        _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(pid_alive(r.pid) for r in targets):
        time.sleep(POLL_S)
    for record in targets:
        if still_ours(record):
            _signal_group(record.pid, signal.SIGKILL)
        elif not pid_alive(record.pid):
            # The leader is gone; what is left of its group goes too. No other process
            # has this PID, so no other group can have this ID.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pid, signal.SIGKILL)
    return targets


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """The group the process leads (every child of the runner has its own session)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
            return
    except (ProcessLookupError, PermissionError):
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


class LeftoverProcesses(RuntimeError):
    """A dead runner's processes may still run, and cannot be told to be its own."""

    def __init__(self, mesh_dir: Path, unverified: Iterable[RecordedProcess]) -> None:
        self.unverified = tuple(unverified)
        listed = ", ".join(r.describe() for r in self.unverified)
        super().__init__(
            f"the previous runner of {mesh_dir} died without stopping what it started; "
            f"these may still run, and whether they are its own cannot be told: {listed}. "
            f"Stop them with `ratline down --force --mesh {mesh_dir}`"
        )


class StartTimes:
    """Start times of PIDs, read from /proc once per PID (the runner's run.json writes)."""

    def __init__(self) -> None:
        self._known: dict[int, int | None] = {}

    def record(self, pid: int | None, role: str) -> RecordedProcess | None:
        if pid is None or pid <= 0:
            return None
        if pid not in self._known:
            self._known[pid] = procfs.start_ticks(pid)
        return RecordedProcess(pid, role, self._known[pid])

    def forget_others(self, pids: Iterable[int]) -> None:
        keep = set(pids)
        self._known = {p: t for p, t in self._known.items() if p in keep}


def clean_up_after_dead_runner(
    mesh_dir: Path, info: Mapping[str, Any], *, force: bool = False
) -> list[RecordedProcess]:
    """Stop what the dead runner of `info` (its run.json) left running, then remove its
    run state. Raises LeftoverProcesses (and stops nothing) if some live PID cannot be
    told to be its own and `force` is not given. Returns the processes stopped."""
    records = recorded_processes(info)
    if not records and "processes" not in info:
        # A run.json of a version that recorded no start times: nothing can be checked.
        records = [RecordedProcess(pid, "process") for pid in pids_in_run_info(info)
                   if pid != info.get("runner_pid")]
    found = find_leftovers(records)
    if found.unverified and not force:
        raise LeftoverProcesses(mesh_dir, found.unverified)
    stopped = stop_processes([*found.ours, *found.unverified], force=force)
    remove_run_state(mesh_dir, info)
    return stopped
