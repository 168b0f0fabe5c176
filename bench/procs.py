"""Processes for benchmarks: start in their own session, stop by PID, read /proc figures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll `condition` until it returns something truthy; raise TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception as exc:  # the thing polled is not up yet
            last = exc
        else:
            if value:
                return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


def http_get(url: str, timeout: float = 10.0, headers: dict[str, str] | None = None) -> bytes:
    req = urllib.request.Request(url, headers=headers or {})
    with _NO_PROXY.open(req, timeout=timeout) as resp:
        return bytes(resp.read())


def http_send(
    url: str, body: bytes, method: str, content_type: str, timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> bytes:
    req = urllib.request.Request(
        url, data=body, method=method, headers={"Content-Type": content_type, **(headers or {})}
    )
    with _NO_PROXY.open(req, timeout=timeout) as resp:
        return bytes(resp.read())


class ProcessGroup:
    """Processes a benchmark started; `stop_all` ends each by PID (SIGTERM, then SIGKILL)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        args: Sequence[str],
        name: str,
        env: dict[str, str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        stdout: int | None = None,
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            list(args),
            stdin=stdin,
            stdout=stdout if stdout is not None else log,
            stderr=log,
            env=env,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int) -> dict[str, int]:
    """Rss, Pss and USS (private clean + dirty) of a process, in KiB, from smaps_rollup."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].endswith(":") and parts[1].isdigit():
                values[parts[0][:-1]] = int(parts[1])
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return {"rss": values.get("Rss", 0), "pss": values.get("Pss", 0), "uss": uss}


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def process_tree(pid: int) -> list[int]:
    """The process and its children (a control plane's xDS worker processes)."""
    children = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return [pid, *sorted(children)]


def _each(pid: int, measure: Callable[[int], Any]) -> list[Any]:
    values = []
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            values.append(measure(member))
    return values


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of the process and its live children (see `process_tree`)."""
    return float(sum(_each(pid, cpu_seconds)))


def tree_memory_kib(pid: int) -> dict[str, int]:
    """`memory_kib` summed over the process and its children."""
    total = {"rss": 0, "pss": 0, "uss": 0}
    for values in _each(pid, memory_kib):
        for key in total:
            total[key] += values[key]
    return total


def tree_peak_rss_kib(pid: int) -> int:
    """The sum of each member's own peak RSS (an upper bound of the tree's peak)."""
    return int(sum(_each(pid, peak_rss_kib)))


def kill_pids(pids: set[int] | list[int], timeout: float = 5.0) -> None:
    """SIGTERM these PIDs, then SIGKILL what is left after `timeout`."""
    live = [p for p in pids if p and p != os.getpid()]
    for pid in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in live):
        time.sleep(0.05)
    for pid in live:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return not f.read().rsplit(") ", 1)[1].startswith("Z")
    except OSError:
        return False
