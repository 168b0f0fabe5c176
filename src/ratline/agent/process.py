"""One child process in its own session, its output appended to a log file.

Every process Ratline starts (control plane, Envoys, apps) goes through `ChildProcess`:
it runs in a new session (so Ctrl-C on the terminal reaches only the runner), is waited
on with asyncio, and is stopped by its PID (its process group, which it leads): SIGTERM,
a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class ChildProcess:
    """A process started with `start()`, awaited with `wait()`, ended with `stop()`."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdout_path: Path | None = None,
    ) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.stdout_path = stdout_path
        """Where stdout goes when not with stderr to `log_path` (an Envoy's access log)."""
        self.cwd = cwd
        self.env = dict(env) if env is not None else None
        self.started_at: float | None = None
        """`time.monotonic()` when the process was started."""
        self._proc: asyncio.subprocess.Process | None = None
        self._spawning: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    def uptime(self) -> float:
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    async def start(self) -> int:
        """Spawn the process; OSError (e.g. a missing executable) propagates.

        The spawn is shielded from cancellation so a started process is never lost:
        `stop()` always finds it.
        """
        if self._spawning is None:
            self._spawning = asyncio.ensure_future(self._spawn())
        await asyncio.shield(self._spawning)
        assert self._proc is not None
        return self._proc.pid

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(self.log_path, "ab"))
            out = files.enter_context(open(self.stdout_path, "ab")) if self.stdout_path else log
            self._proc = await asyncio.create_subprocess_exec(
                *self.args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=log if self.stdout_path else subprocess.STDOUT,
                start_new_session=True,
            )
        self.started_at = time.monotonic()

    async def wait(self) -> int:
        """Wait until the process has exited; its return code."""
        if self._spawning is not None:
            await asyncio.shield(self._spawning)
        if self._proc is None:
            raise RuntimeError("process not started")
        return await self._proc.wait()

    async def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM its process group, wait at most `timeout_s`, then SIGKILL. Idempotent."""
        if self._spawning is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._spawning)
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                _signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        # Whatever the leader left behind in its group goes too.
        _signal_group(proc.pid, signal.SIGKILL)
        return proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log_path, lines)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group `pid` leads (its own session), or the PID alone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def log_tail(path: Path, lines: int = 20, max_bytes: int = 64 * 1024) -> str:
    """The last `lines` lines of a log file ('' if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (and is not a zombie we can see)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0:1] != ["Z"]
