"""run.json helpers and the control plane's ready file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ratline.runtime.local.cpchild import controlplane_args, parse_ready_file
from ratline.runtime.local.runfile import (
    live_runner_pid,
    pids_in_run_info,
    read_run_file,
    remove_run_file,
    write_run_file,
)
from tests.helpers import kill_pids

SLEEP = "import time; time.sleep(60)"


def test_run_file_round_trip_and_live_runner(tmp_path: Path) -> None:
    assert read_run_file(tmp_path) is None and live_runner_pid(tmp_path) is None
    runner = subprocess.Popen([sys.executable, "-c", SLEEP, "ratline.runtime.local"])
    stranger = subprocess.Popen([sys.executable, "-c", SLEEP])
    try:
        write_run_file(tmp_path, {"runner_pid": runner.pid})
        assert read_run_file(tmp_path) == {"runner_pid": runner.pid}
        assert live_runner_pid(tmp_path) == runner.pid
        # Alive but no ratline runner: a reused PID, not a mesh.
        write_run_file(tmp_path, {"runner_pid": stranger.pid})
        assert live_runner_pid(tmp_path) is None
    finally:
        kill_pids([runner.pid, stranger.pid])
        runner.wait()
        stranger.wait()
    # A PID above pid_max never exists: the run file is stale.
    write_run_file(tmp_path, {"runner_pid": 2**22 + 1})
    assert live_runner_pid(tmp_path) is None
    remove_run_file(tmp_path)
    remove_run_file(tmp_path)
    assert read_run_file(tmp_path) is None


def test_pids_in_run_info() -> None:
    info = {
        "runner_pid": 1,
        "control_plane": {"pid": 2},
        "gateways": [{"pid": 3}],
        "instances": [{"app_pid": 4, "proxy_pid": 5}, {"app_pid": None, "proxy_pid": 6}],
    }
    assert pids_in_run_info(info) == [1, 2, 3, 4, 5, 6]


def test_ready_file(tmp_path: Path) -> None:
    path = tmp_path / "cp.json"
    assert parse_ready_file(path) is None
    path.write_text('{"pid": 7')
    assert parse_ready_file(path) is None
    path.write_text('{"pid": 7, "xds": "127.0.0.1:1", "admin": "127.0.0.1:2", "errors": ["x"]}')
    info = parse_ready_file(path)
    assert info is not None and info.pid == 7 and info.errors == ("x",)
    assert info.to_json() == {"pid": 7, "xds": "127.0.0.1:1", "admin": "127.0.0.1:2"}


def test_controlplane_args(tmp_path: Path) -> None:
    args = controlplane_args(tmp_path, 1, 2, tmp_path / "r.json", strict=True)
    assert args[1:3] == ["-m", "ratline.controlplane"]
    assert args[args.index("--xds-port") + 1] == "1" and args[-1] == "--strict"
    assert "--strict" not in controlplane_args(tmp_path, 1, 2, tmp_path / "r", strict=False)
