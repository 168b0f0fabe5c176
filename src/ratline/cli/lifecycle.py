"""`ratline up` and `ratline down`: start a mesh from a directory (foreground or -d), stop it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from ratline.agent.envoy_binary import EnvoyUnusable, check_envoy
from ratline.agent.process import log_tail, pid_alive
from ratline.cli.meshref import mesh_option
from ratline.runtime.local.leftovers import LeftoverProcesses, clean_up_after_dead_runner
from ratline.runtime.local.nacks import current_nacks, resource_names
from ratline.runtime.local.runfile import (
    MeshAlreadyRunning,
    live_runner_pid,
    read_run_file,
    run_file_path,
)
from ratline.runtime.local.runner import configure_logging, run_mesh
from ratline.runtime.local.startup import ready_line
from ratline.settings import RUNNER_LOG, Settings, logs_dir, state_dir

POLL_S = 0.1
DOWN_TIMEOUT_S = 60.0


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


@click.command(short_help="Run a mesh from a directory of YAML (-d: in the background).")
@click.argument(
    "mesh_dir",
    default=".",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("-d", "--detach", is_flag=True, help="Run in the background; return once ready.")
def up(mesh_dir: Path, detach: bool) -> None:
    """Run the mesh described by MESH_DIR's YAML: control plane, gateway, workloads.

    MESH_DIR (default: the current directory) holds Kubernetes-style YAML: Istio's
    kinds, Services, and Workloads (the programs to run beside their sidecars), plus an
    optional mesh.yaml (MeshConfig). Start-up ends with the URL of the ingress gateway;
    a config a proxy rejects is shown as it happens. Logs are in MESH_DIR/.ratline/logs
    (`ratline logs INSTANCE`). In the foreground Ctrl-C stops everything; with -d,
    `ratline down` does.
    """
    mesh_dir = mesh_dir.resolve()
    settings = _settings()
    _check_mesh_dir(mesh_dir)
    _check_envoy(settings)
    pid = live_runner_pid(mesh_dir)
    if pid is not None:
        raise click.ClickException(str(MeshAlreadyRunning(mesh_dir, pid)))
    _clean_up_after_dead_runner(mesh_dir, force=False)
    if detach:
        _up_detached(mesh_dir, settings)
        return
    configure_logging()
    try:
        code = run_mesh(mesh_dir, settings)
    except (MeshAlreadyRunning, LeftoverProcesses) as exc:
        raise click.ClickException(str(exc)) from None
    if code:
        raise SystemExit(code)


def _check_mesh_dir(mesh_dir: Path) -> None:
    """Refuse a directory with nothing to run: no YAML, and nothing applied before."""
    from ratline.config.store import APPLIED_DIR, mesh_files

    if mesh_files(mesh_dir):
        return
    applied = state_dir(mesh_dir) / APPLIED_DIR
    if applied.is_dir() and any(applied.iterdir()):
        return
    raise click.ClickException(
        f"{mesh_dir} holds no YAML files (*.yaml, *.yml; mesh.yaml alone holds no resources): "
        "there is nothing to run. A mesh directory holds Kubernetes-style YAML: Istio's "
        "kinds, Services and Workloads (the processes to run); try `ratline up "
        "examples/bookinfo` from Ratline's repository"
    )


def _check_envoy(settings: Settings) -> None:
    try:
        check_envoy(settings.envoy)
    except EnvoyUnusable as exc:
        raise click.ClickException(str(exc)) from None


def _up_detached(mesh_dir: Path, settings: Settings) -> None:
    log_path = logs_dir(mesh_dir) / RUNNER_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        offset = log.tell()
        runner = subprocess.Popen(
            [sys.executable, "-m", "ratline.runtime.local", str(mesh_dir)],
            cwd=mesh_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 2 * settings.ready_timeout_s + 10
    while True:
        info = read_run_file(mesh_dir)
        if info and info.get("runner_pid") == runner.pid and info.get("ready"):
            break
        if runner.poll() is not None:
            raise click.ClickException(
                f"the mesh did not start (runner exited with code {runner.returncode}):\n"
                + _log_since(log_path, offset)
            )
        if time.monotonic() >= deadline:
            _stop_runner(runner.pid, DOWN_TIMEOUT_S)
            raise click.ClickException(
                "the mesh was not ready in time; stopped it. Runner log:\n"
                + _log_since(log_path, offset)
            )
        time.sleep(POLL_S)
    # The runner outlives this command; do not let Popen's finalizer warn about it.
    runner.returncode = 0
    info = _wait_for_apps(mesh_dir, info, time.monotonic() + settings.ready_timeout_s)
    for line in _rejected_config(mesh_dir):
        click.echo(f"warning: {line}", err=True)
    click.echo(_describe(info, log_path))


def _wait_for_apps(mesh_dir: Path, info: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Wait (bounded) until every instance is healthy or has an error to show."""
    while time.monotonic() < deadline:
        instances = info.get("instances") or []
        if all(i.get("healthy") or i.get("error") for i in instances):
            break
        time.sleep(POLL_S)
        info = read_run_file(mesh_dir) or info
    return info


def _rejected_config(mesh_dir: Path) -> list[str]:
    """Config a proxy refused (NACKs), e.g. a gateway port already in use."""
    from ratline.cli.admin_client import AdminApiError, AdminClient

    try:
        client = AdminClient.for_mesh(mesh_dir)
        nacks = current_nacks(client.get("/v1/proxy-status"))
        lines = []
        for nack in nacks:
            dump = client.get("/v1/config-dump", {"node": nack.node, "type": nack.type_name})
            lines.append(nack.line(resource_names(dump.get("resources") or ())))
    except (AdminApiError, click.ClickException, OSError):
        return []
    return lines


def _log_since(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace").strip()
    except OSError:
        return ""
    return text if len(text) < 6000 else "…\n" + log_tail(path, 60)


def _describe(info: dict[str, Any], log_path: Path) -> str:
    cp = info.get("control_plane") or {}
    lines = [
        f"mesh ready in {info.get('mesh_dir')} (runner PID {info.get('runner_pid')})",
        f"  control plane  xDS {cp.get('xds')}, admin http://{cp.get('admin')}",
    ]
    for gw in info.get("gateways") or ():
        listen = ", ".join(f"127.0.0.1:{p}" for p in gw.get("listen") or ()) or "no Gateway yet"
        lines.append(f"  gateway        {gw.get('name')}: {listen} (admin {gw.get('admin_port')})")
    instances = info.get("instances") or []
    healthy = sum(1 for i in instances if i.get("healthy"))
    lines.append(f"  instances      {len(instances)} ({healthy} healthy)")
    for inst in instances:
        if inst.get("error"):
            lines.append(f"    {inst.get('name')}: {inst.get('error')}")
    lines.append(f"  logs           {log_path.parent} (ratline logs INSTANCE)")
    lines.append(f"stop it with: ratline down --mesh {info.get('mesh_dir')}")
    lines.append(ready_line(info))
    return "\n".join(lines)


def _stop_runner(pid: int, timeout_s: float) -> bool:
    """SIGTERM the runner and wait until it has exited; False if it is still there."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def _clean_up_after_dead_runner(mesh_dir: Path, *, force: bool) -> bool:
    """If run.json names a runner that is gone, stop what it left running; True if there
    was such a run.json."""
    info = read_run_file(mesh_dir)
    if info is None:
        return False
    try:
        stopped = clean_up_after_dead_runner(mesh_dir, info, force=force)
    except LeftoverProcesses as exc:
        raise click.ClickException(str(exc)) from None
    message = f"the previous runner (PID {info.get('runner_pid')}) of {mesh_dir} is gone"
    if stopped:
        message += "; stopped what it left running: " + ", ".join(r.describe() for r in stopped)
    click.echo(message, err=True)
    return True


@click.command(short_help="Stop the running mesh (or what a dead runner left).")
@mesh_option
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=DOWN_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the mesh to stop.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Also stop processes a dead runner left whose identity cannot be checked, and "
    "kill what is left if the runner does not stop in time.",
)
def down(mesh_dir: Path, timeout_s: float, force: bool) -> None:
    """Stop the running mesh: apps, sidecars, gateway, control plane.

    If its runner died (killed, crashed), stop what it left running instead.
    """
    mesh_dir = mesh_dir.resolve()
    info = read_run_file(mesh_dir)
    if info is None:
        click.echo(f"no mesh is running in {mesh_dir} (no {run_file_path(mesh_dir)})", err=True)
        return
    pid = live_runner_pid(mesh_dir)
    if pid is None:
        _clean_up_after_dead_runner(mesh_dir, force=force)
        return
    click.echo(f"stopping the mesh in {mesh_dir} (runner PID {pid})…", err=True)
    if _stop_runner(pid, timeout_s):
        click.echo("mesh stopped")
        return
    if not force:
        raise click.ClickException(
            f"the runner (PID {pid}) did not stop within {timeout_s:g}s; see "
            f"{logs_dir(mesh_dir) / RUNNER_LOG}, or kill everything with `ratline down "
            f"--force --mesh {mesh_dir}`"
        )
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _clean_up_after_dead_runner(mesh_dir, force=True)
    click.echo("mesh stopped (forced)")


COMMANDS = [up, down]
