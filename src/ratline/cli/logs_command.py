"""`ratline logs INSTANCE [-f] [--sidecar | --access]`: an instance's output, so a user
need not find `DIR/.ratline/logs/` by hand.

INSTANCE is an instance (`reviews-v2-0`), a workload (`reviews-v2`: its first
instance), the gateway (`istio-ingressgateway`), each optionally `.NAMESPACE`, or
`controlplane` / `runner` for the mesh's own processes. Works after the mesh stopped
too: the files stay. File names come from `ratline.settings.instance_log`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import click

from ratline.cli.meshref import mesh_option
from ratline.runtime.local.runfile import read_run_file
from ratline.settings import (
    CONTROL_PLANE_LOG,
    LOGS_TOP_NAMESPACE,
    RUNNER_LOG,
    LogStream,
    instance_log,
    instance_log_name,
    logs_dir,
)

FOLLOW_POLL_S = 0.2
READ_CHUNK = 64 * 1024
MESH_PROCESS_LOGS = {"controlplane": CONTROL_PLANE_LOG, "runner": RUNNER_LOG}
GATEWAY_PROXY = "istio-ingressgateway"

ACCESS_LOG_HINT = (
    "access logging is off or nothing was logged yet; turn it on with `accessLogFile: "
    "/dev/stdout` in the mesh directory's mesh.yaml (Istio's meshConfig.accessLogFile) or a "
    "Telemetry resource's accessLogging"
)


def resolve_instance(
    target: str, entries: Sequence[Mapping[str, Any]], log_names: Sequence[str]
) -> str:
    """The instance whose logs `target` means.

    `entries` are run.json's instances and gateways (`name`, `namespace`, `workload`);
    `log_names` the files in the logs folder, used when no mesh runs. Raises LookupError
    saying what exists.
    """
    name, _, namespace = target.partition(".")

    def wanted(entry: Mapping[str, Any]) -> bool:
        return not namespace or entry.get("namespace") == namespace

    names = sorted(str(e.get("name")) for e in entries if e.get("name") == name and wanted(e))
    if names:
        return names[0]
    of_workload = sorted(
        (str(e.get("namespace")), str(e.get("name")))
        for e in entries
        if wanted(e) and (e.get("workload") == name or _workload_of(str(e.get("name"))) == name)
    )
    if of_workload:
        return of_workload[0][1]
    on_disk = {n.split(".", 1)[0] for n in log_names if n.endswith(".log")}
    if name in on_disk:
        return name
    replicas = sorted(
        (n for n in on_disk if _workload_of(n) == name),
        key=lambda n: int(n.rpartition("-")[2]),
    )
    if replicas:
        return replicas[0]
    known = sorted({str(e.get("name")) for e in entries} | on_disk - set(MESH_PROCESS_LOGS))
    raise LookupError(
        f"no instance, workload or gateway named {target!r}; "
        f"known: {', '.join(known) or 'none'} (and controlplane, runner)"
    )


def _workload_of(instance: str) -> str | None:
    """`reviews-v2` for `reviews-v2-0`; None if the name does not end in `-N`."""
    base, dash, index = instance.rpartition("-")
    return base if dash and index.isdigit() else None


def log_path_for(mesh_dir: Path, target: str, stream: LogStream) -> tuple[str, Path]:
    """(instance, file) that `ratline logs TARGET` shows (LookupError if TARGET is unknown)."""
    if target in MESH_PROCESS_LOGS and stream == "app":
        return target, logs_dir(mesh_dir) / MESH_PROCESS_LOGS[target]
    info = read_run_file(mesh_dir) or {}
    entries = [*(info.get("instances") or ()), *(info.get("gateways") or ())]
    on_disk = _log_files(logs_dir(mesh_dir))
    instance = resolve_instance(target, entries, sorted(on_disk))
    wanted = target.partition(".")[2]
    namespaces = {
        str(e["namespace"])
        for e in entries
        if e.get("name") == instance and e.get("namespace") and wanted in ("", e["namespace"])
    }
    if not namespaces:
        namespace = wanted or on_disk.get(_log_name(instance), LOGS_TOP_NAMESPACE)
    elif LOGS_TOP_NAMESPACE in namespaces:  # no namespace given means the default one
        namespace = LOGS_TOP_NAMESPACE
    else:
        namespace = min(namespaces)
    gateways = {str(g.get("name")) for g in info.get("gateways") or ()}
    instances = {str(i.get("name")) for i in info.get("instances") or ()}
    is_gateway = instance in gateways or (
        instance.startswith(GATEWAY_PROXY) and instance not in instances
    )
    if is_gateway and stream == "app":
        stream = "envoy"  # a gateway is only its Envoy
    return instance, instance_log(mesh_dir, instance, stream, namespace)


def _log_name(instance: str) -> str:
    return instance_log_name(instance, "envoy")


def _log_files(folder: Path) -> dict[str, str]:
    """Log file name → its namespace, for the files in `logs/` and its namespace folders
    (used when no mesh runs: run.json is gone, the files stay)."""
    found: dict[str, str] = {}
    try:
        with os.scandir(folder) as top:
            for entry in top:
                if entry.is_dir():
                    for name in sorted(os.listdir(entry.path)):
                        found.setdefault(name, entry.name)
                else:
                    found[entry.name] = LOGS_TOP_NAMESPACE
    except OSError:
        pass
    return found


def instance_error(mesh_dir: Path, instance: str) -> str | None:
    """The error run.json records for an instance (e.g. its command was not found)."""
    info = read_run_file(mesh_dir) or {}
    for entry in [*(info.get("instances") or ()), *(info.get("gateways") or ())]:
        if entry.get("name") == instance and entry.get("error"):
            return str(entry["error"])
    return None


def tail_bytes(data: bytes, lines: int) -> bytes:
    """The last `lines` lines of `data` (all of it when `lines` < 0)."""
    if lines < 0:
        return data
    if lines == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-lines:])


def follow(path: Path, start: int, stop_after_s: float | None = None) -> Iterator[bytes]:
    """What is appended to `path` from offset `start`, as it comes (`tail -F`): a file
    that was replaced or truncated (the instance restarted, a log rotated) is read again
    from its start. Runs until interrupted (or `stop_after_s`, for tests)."""
    deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
    handle: BinaryIO | None = None
    identity: tuple[int, int] | None = None
    position = start
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                stat = path.stat()
            except FileNotFoundError:
                time.sleep(FOLLOW_POLL_S)
                continue
            now = (stat.st_dev, stat.st_ino)
            if handle is None or now != identity or stat.st_size < position:
                if handle is not None:
                    handle.close()
                    position = 0
                handle = open(path, "rb")  # noqa: SIM115 - kept open while following
                identity = now
                handle.seek(position)
            chunk = handle.read(READ_CHUNK)
            if chunk:
                position += len(chunk)
                yield chunk
            else:
                time.sleep(FOLLOW_POLL_S)
    finally:
        if handle is not None:
            handle.close()


def _write(chunk: bytes) -> None:
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


@click.command(short_help="An instance's app or sidecar output (-f follows).")
@click.argument("instance")
@click.option("-f", "--follow", "follow_", is_flag=True, help="Keep printing what is added.")
@click.option("--sidecar", is_flag=True, help="The instance's Envoy log instead of its app's.")
@click.option("--access", is_flag=True, help="The instance's Envoy access log.")
@click.option(
    "--tail", "tail", type=int, default=-1, help="Only the last N lines (default: all)."
)
@mesh_option
def logs(
    instance: str, follow_: bool, sidecar: bool, access: bool, tail: int, mesh_dir: Path
) -> None:
    """The output of an instance's app (or, with --sidecar, of its Envoy).

    INSTANCE is an instance (`reviews-v2-0`), a workload (`reviews-v2`: its first
    instance) or `istio-ingressgateway`, optionally `.NAMESPACE`; `controlplane` and
    `runner` show the mesh's own logs. The files are in DIR/.ratline/logs/.
    """
    if sidecar and access:
        raise click.UsageError("--sidecar and --access are exclusive")
    mesh_dir = mesh_dir.resolve()
    stream: LogStream = "access" if access else "envoy" if sidecar else "app"
    try:
        name, path = log_path_for(mesh_dir, instance, stream)
    except LookupError as exc:
        raise click.ClickException(f"{exc} (mesh {mesh_dir})") from None
    if stream == "access" and not follow_ and (not path.is_file() or path.stat().st_size == 0):
        # The file is the proxy's stdout: it exists (empty) while access logging is off.
        what = f"no {path}" if not path.is_file() else f"{path} is empty"
        raise click.ClickException(f"no access log for {name} ({what}): {ACCESS_LOG_HINT}")
    if not path.is_file():
        error = instance_error(mesh_dir, name)
        if error:
            raise click.ClickException(f"no log for {name}: it did not start: {error}")
        raise click.ClickException(
            f"no log for {name} yet ({path} does not exist): has it started? "
            "See `ratline status`."
        )
    with open(path, "rb") as f:
        data = f.read()
    _write(tail_bytes(data, tail))
    if follow_:
        try:
            for chunk in follow(path, len(data)):
                _write(chunk)
        except KeyboardInterrupt:
            pass


COMMANDS = [logs]
