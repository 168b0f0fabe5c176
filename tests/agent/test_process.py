"""ChildProcess: real child processes in their own session, stopped by PID."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ratline.agent.process import ChildProcess, log_tail, pid_alive
from tests.helpers import kill_pids


@pytest.fixture
def started() -> list[int]:
    pids: list[int] = []
    yield pids
    kill_pids(pids)


async def test_output_goes_to_the_log_and_exit_code_is_reported(tmp_path: Path) -> None:
    child = ChildProcess(
        [sys.executable, "-c", "import os; print('hello', os.environ['X']); raise SystemExit(3)"],
        log_path=tmp_path / "logs" / "child.log",
        env={**os.environ, "X": "there"},
    )
    await child.start()
    assert await child.wait() == 3
    assert child.returncode == 3 and not child.running
    assert log_tail(tmp_path / "logs" / "child.log") == "hello there"


async def test_child_has_its_own_session(tmp_path: Path, started: list[int]) -> None:
    child = ChildProcess(
        [sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "c.log"
    )
    pid = await child.start()
    started.append(pid)
    assert os.getsid(pid) == pid != os.getsid(0)
    await child.stop(timeout_s=5)
    assert not pid_alive(pid)


async def test_stop_kills_what_ignores_sigterm_and_its_group(
    tmp_path: Path, started: list[int]
) -> None:
    script = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    log = tmp_path / "c.log"
    child = ChildProcess([sys.executable, "-c", script], log_path=log)
    pid = await child.start()
    started.append(pid)
    from tests.helpers import wait_for

    grandchild = int(wait_for(lambda: log_tail(log).strip(), timeout=10, what="grandchild pid"))
    started.append(grandchild)
    code = await child.stop(timeout_s=0.5)
    assert code == -9
    wait_for(lambda: not pid_alive(grandchild), timeout=5, what="grandchild gone")


async def test_missing_executable_raises(tmp_path: Path) -> None:
    child = ChildProcess(["/nonexistent/program"], log_path=tmp_path / "c.log")
    with pytest.raises(FileNotFoundError):
        await child.start()
    assert await child.stop() is None
