"""What a dead runner left: processes recognised by PID and start time, stopped by group.

Real processes stand in for the runner's children: each starts in its own session (as
the runner's do) and forks a grandchild into its group. A record whose start time is
not the process's (a PID reused by another program) is never signalled.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratline.runtime.local import procfs
from ratline.runtime.local.leftovers import (
    LeftoverProcesses,
    RecordedProcess,
    StartTimes,
    clean_up_after_dead_runner,
    find_leftovers,
    stop_processes,
)
from ratline.runtime.local.runfile import read_run_file, write_run_file
from ratline.settings import state_dir
from tests.helpers import kill_pids, pid_alive, wait_for

LEADER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


class Group:
    """A session leader and the grandchild it forked into its group."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LEADER], stdout=subprocess.PIPE, text=True,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.child = int(self.proc.stdout.readline())
        self.pid = self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None or pid_alive(self.child)


@pytest.fixture
def groups() -> Iterator[list[Group]]:
    made: list[Group] = []
    yield made
    for group in made:
        kill_pids([group.pid, group.child], timeout=1)
        group.proc.wait()


def test_start_ticks_and_command_lines_from_proc(groups: list[Group]) -> None:
    group = Group()
    groups.append(group)
    ticks = procfs.start_ticks(group.pid)
    assert ticks is not None and ticks == procfs.start_ticks(group.pid)
    assert procfs.start_ticks(os.getpid()) != ticks
    assert procfs.start_ticks(2**22 + 1) is None
    wait_for(lambda: "time.sleep(120)" in (procfs.command_line(group.child) or ""),
             timeout=10, what="the grandchild's command line")


def test_only_processes_still_the_recorded_ones_are_stopped_with_their_groups(
    groups: list[Group],
) -> None:
    ours, stranger = Group(), Group()
    groups += [ours, stranger]
    times = StartTimes()
    record = times.record(ours.pid, "app a-0")
    assert record is not None
    reused = RecordedProcess(stranger.pid, "app b-0", (procfs.start_ticks(stranger.pid) or 0) - 1)
    unknown = RecordedProcess(stranger.pid, "app c-0", None)
    gone = RecordedProcess(2**22 + 1, "app d-0", 1)

    found = find_leftovers([record, reused, unknown, gone])
    assert found.ours == (record,) and found.unverified == (unknown,)

    stopped = stop_processes([record, reused], timeout_s=5)
    assert stopped == [record]
    wait_for(lambda: not ours.alive(), timeout=10, what="the group stopped")
    assert stranger.alive()
    # Without --force, one whose identity cannot be told is left alone.
    assert stop_processes([unknown], timeout_s=1) == []
    assert stranger.alive()
    assert stop_processes([unknown], force=True, timeout_s=5) == [unknown]
    wait_for(lambda: not stranger.alive(), timeout=10, what="the forced group stopped")


def test_clean_up_refuses_unverified_processes_then_force_stops_them(
    tmp_path: Path, groups: list[Group]
) -> None:
    group = Group()
    groups.append(group)
    state = state_dir(tmp_path)
    (state / "proxies").mkdir(parents=True)
    (state / "proxies" / "node.json").write_text("{}")
    # A run.json of a runner that recorded no start times (an older version).
    info = {"runner_pid": 2**22 + 1, "control_plane": {"pid": group.pid}}
    write_run_file(tmp_path, info)
    with pytest.raises(LeftoverProcesses, match=r"ratline down --force --mesh"):
        clean_up_after_dead_runner(tmp_path, info)
    assert group.alive() and read_run_file(tmp_path) is not None
    stopped = clean_up_after_dead_runner(tmp_path, info, force=True)
    assert [r.pid for r in stopped] == [group.pid]
    wait_for(lambda: not group.alive(), timeout=10, what="the group stopped")
    assert read_run_file(tmp_path) is None and not (state / "proxies").exists()


def test_port_holders_are_named_by_pid_and_command_line() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        holders = procfs.listeners(port)
        assert [h.pid for h in holders] == [os.getpid()]
        assert sys.executable.rsplit("/", 1)[-1] in holders[0].command or "python" in (
            holders[0].command
        )
        assert procfs.describe_port_holders(port).startswith(f"in use by PID {os.getpid()} (")
    assert procfs.listeners(port) == []
