"""The control plane as a child of the runner: started, waited on until ready, restarted.

The control plane (`python -m ratline.controlplane`) writes a ready file with its PID and
addresses once it serves xDS and the admin API. The runner keeps its two ports for its
whole life, so a restarted control plane is found by the Envoys at the same address.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratline.agent.process import ChildProcess

READY_POLL_INTERVAL_S = 0.05


class ControlPlaneFailed(RuntimeError):
    """The control plane exited, or did not get ready, at start; the message says why."""


@dataclass(frozen=True)
class ControlPlaneInfo:
    pid: int
    xds: str
    """`127.0.0.1:PORT`."""
    admin: str
    errors: tuple[str, ...] = ()
    """Files of the mesh dir it refused at start (it serves the rest)."""
    ca: str = ""
    """`127.0.0.1:PORT` of its CSR endpoint (HTTPS); "" when it runs no CA."""
    xds_tls: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"pid": self.pid, "xds": self.xds, "admin": self.admin}
        if self.ca:
            data.update(ca=self.ca, xds_tls=self.xds_tls)
        return data


CONTROLPLANE_MODULE = "ratline.controlplane"


def controlplane_args(
    mesh_dir: Path,
    xds_port: int,
    admin_port: int,
    ready_file: Path,
    *,
    strict: bool,
    module: str = CONTROLPLANE_MODULE,
    prometheus_url: str = "",
) -> list[str]:
    args = [
        sys.executable,
        "-m",
        module,
        "--mesh-dir",
        str(mesh_dir),
        "--xds-port",
        str(xds_port),
        "--admin-port",
        str(admin_port),
        "--ready-file",
        str(ready_file),
    ]
    if prometheus_url:
        args += ["--prometheus-url", prometheus_url]
    return [*args, "--strict"] if strict else args


def parse_ready_file(path: Path) -> ControlPlaneInfo | None:
    """The ready file's content, or None while it is absent or incomplete."""
    try:
        data = json.loads(path.read_text())
        return ControlPlaneInfo(
            pid=int(data["pid"]),
            xds=str(data["xds"]),
            admin=str(data["admin"]),
            errors=tuple(str(e) for e in data.get("errors") or ()),
            ca=str(data.get("ca") or ""),
            xds_tls=bool(data.get("xds_tls")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ControlPlaneChild:
    """One control plane process at a time, always on the same two ports."""

    def __init__(
        self,
        *,
        mesh_dir: Path,
        xds_port: int,
        admin_port: int,
        ready_file: Path,
        log_path: Path,
        module: str = CONTROLPLANE_MODULE,
        prometheus_url: str = "",
    ) -> None:
        self.module = module
        self.prometheus_url = prometheus_url
        """The Prometheus add-on's URL, for the dashboard ("": none)."""
        """The Python module run as the control plane (tests substitute a fake)."""
        self.mesh_dir = mesh_dir
        self.xds_port = xds_port
        self.admin_port = admin_port
        self.ready_file = ready_file
        self.log_path = log_path
        self.process: ChildProcess | None = None
        self.info: ControlPlaneInfo | None = None

    async def start(self, *, strict: bool, timeout_s: float) -> ControlPlaneInfo:
        """Start it and wait for its ready file; ControlPlaneFailed if it exits or stalls."""
        with contextlib.suppress(FileNotFoundError):
            self.ready_file.unlink()
        self.info = None
        args = controlplane_args(
            self.mesh_dir,
            self.xds_port,
            self.admin_port,
            self.ready_file,
            strict=strict,
            module=self.module,
            prometheus_url=self.prometheus_url,
        )
        process = ChildProcess(args, log_path=self.log_path, cwd=self.mesh_dir)
        self.process = process
        log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        await process.start()
        deadline = time.monotonic() + timeout_s
        while True:
            info = parse_ready_file(self.ready_file)
            if info is not None and info.pid == process.pid:
                self.info = info
                return info
            if not process.running:
                raise ControlPlaneFailed(
                    f"the control plane exited with code {process.returncode}:\n"
                    + _log_since(self.log_path, log_offset)
                )
            if time.monotonic() >= deadline:
                await process.stop()
                raise ControlPlaneFailed(
                    f"the control plane was not ready after {timeout_s:g}s:\n"
                    + _log_since(self.log_path, log_offset)
                )
            await asyncio.sleep(READY_POLL_INTERVAL_S)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, timeout_s: float = 5.0) -> None:
        if self.process is not None:
            await self.process.stop(timeout_s)
        with contextlib.suppress(FileNotFoundError):
            self.ready_file.unlink()


def _log_since(path: Path, offset: int, max_chars: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    text = text.strip()
    return text[-max_chars:] if len(text) > max_chars else text
