"""`DIR/.ratline/run.json`: the running mesh's PIDs and addresses, written atomically.

The runner rewrites it on every change; `ratline status`, `ratline down` and `up -d`
read it. A run file whose runner PID is gone is stale and may be replaced.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ratline.agent.envoy import write_json_atomically
from ratline.agent.process import pid_alive
from ratline.settings import state_dir

RUN_FILE_NAME = "run.json"
PROXIES_DIR_NAME = "proxies"
"""Envoy bootstrap files, one per running proxy."""
CONTROL_PLANE_READY_FILE = "controlplane.json"
SDS_SOCKET_NAME = "sds.sock"


class MeshAlreadyRunning(RuntimeError):
    def __init__(self, mesh_dir: Path, pid: int) -> None:
        self.pid = pid
        super().__init__(
            f"a mesh is already running in {mesh_dir} (runner PID {pid}); `ratline down` first"
        )


def run_file_path(mesh_dir: Path) -> Path:
    return state_dir(mesh_dir) / RUN_FILE_NAME


def read_run_file(mesh_dir: Path) -> dict[str, Any] | None:
    """run.json's content, or None if absent or unreadable."""
    try:
        data = json.loads(run_file_path(mesh_dir).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def live_runner_pid(mesh_dir: Path) -> int | None:
    """The PID of the runner named in run.json if that process still exists."""
    data = read_run_file(mesh_dir)
    if not data:
        return None
    pid = data.get("runner_pid")
    if isinstance(pid, int) and pid > 0 and pid_alive(pid) and looks_like_ratline(pid):
        return pid
    return None


def looks_like_ratline(pid: int) -> bool:
    """Whether the process's command line mentions ratline (guards against PID reuse).

    True when the command line cannot be read (not Linux): the PID check alone decides.
    """
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"ratline" in cmdline


def write_run_file(mesh_dir: Path, data: dict[str, Any]) -> None:
    write_json_atomically(run_file_path(mesh_dir), data)


def remove_run_file(mesh_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        run_file_path(mesh_dir).unlink()


def pids_in_run_info(data: Mapping[str, Any]) -> list[int]:
    """Every process PID a run.json names (runner, control plane, proxies, apps)."""
    pids: list[int] = []

    def add(value: Any) -> None:
        if isinstance(value, int) and value > 0:
            pids.append(value)

    add(data.get("runner_pid"))
    add((data.get("control_plane") or {}).get("pid"))
    for gateway in data.get("gateways") or ():
        add(gateway.get("pid"))
    for instance in data.get("instances") or ():
        add(instance.get("app_pid"))
        add(instance.get("proxy_pid"))
    for addon in (data.get("addons") or {}).values():
        add(addon.get("pid"))
    return pids


def remove_run_state(mesh_dir: Path, info: Mapping[str, Any] | None = None) -> None:
    """Remove what only a running mesh needs: run.json, the control plane's ready file,
    the proxies' bootstrap files and the SDS socket (with its private temp dir when the
    state dir's path was too long for a socket, as `info` records it). Applied config,
    the CA and the logs stay."""
    state = state_dir(mesh_dir)
    shutil.rmtree(state / PROXIES_DIR_NAME, ignore_errors=True)
    for name in (CONTROL_PLANE_READY_FILE, SDS_SOCKET_NAME):
        with contextlib.suppress(FileNotFoundError):
            (state / name).unlink()
    socket = (info or {}).get("sds_socket")
    if isinstance(socket, str) and socket:
        remove_sds_socket(mesh_dir, Path(socket))
    remove_run_file(mesh_dir)


def remove_sds_socket(mesh_dir: Path, socket: Path) -> None:
    """Remove an SDS socket, and the temp dir holding it if it is not in the state dir."""
    with contextlib.suppress(FileNotFoundError):
        socket.unlink()
    parent = socket.parent
    if parent != state_dir(mesh_dir) and parent.name.startswith(SDS_TEMP_PREFIX):
        shutil.rmtree(parent, ignore_errors=True)


SDS_TEMP_PREFIX = "ratline-sds-"
"""Prefix of the private temp dir of an SDS socket whose path in the state dir is too long."""
