"""Add-ons `ratline up` runs beside the mesh: Prometheus, when a binary is found.

Its config is `ratline prometheus-config`'s (targets from the control plane's HTTP
service discovery), its data under `DIR/.ratline/prometheus/`; it starts once the
control plane is up and stops with the mesh.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import yaml

from ratline.agent.process import ChildProcess
from ratline.observability.prometheus_config import prometheus_config
from ratline.runtime.local.ports import PortAllocator
from ratline.settings import Settings, state_dir

log = logging.getLogger("ratline.runner")

ADMIN_TOKEN_FILE = "admin-token"
STOP_TIMEOUT_S = 5.0


def find_prometheus(settings: Settings) -> str | None:
    """The Prometheus binary to run, or None (not found, or `RATLINE_PROMETHEUS=off`)."""
    if settings.prometheus.lower() == "off":
        return None
    if settings.prometheus:
        return settings.prometheus
    return shutil.which("prometheus")


class PrometheusAddon:
    def __init__(self, binary: str, mesh_dir: Path, settings: Settings,
                 allocator: PortAllocator) -> None:
        self.binary = binary
        self.dir = state_dir(mesh_dir) / "prometheus"
        self.mesh_dir = mesh_dir
        self.settings = settings
        wanted = settings.prometheus_port
        self.port = wanted if wanted and allocator.is_free(wanted) else allocator.allocate()
        allocator.reserve(self.port)
        self.process: ChildProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.bind_address}:{self.port}"

    async def start(self, admin_address: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        config = prometheus_config(
            f"http://{admin_address}",
            str(state_dir(self.mesh_dir) / ADMIN_TOKEN_FILE),
            scrape_interval=self.settings.prometheus_scrape_interval,
        )
        config_path = self.dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.process = ChildProcess(
            [
                self.binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.settings.bind_address}:{self.port}",
            ],
            log_path=state_dir(self.mesh_dir) / "logs" / "prometheus.log",
        )
        try:
            pid = await self.process.start()
        except OSError as exc:
            log.warning("prometheus add-on: cannot start %s: %s", self.binary, exc)
            self.process = None
            return
        log.info("prometheus add-on (pid %d) on %s", pid, self.url)

    async def stop(self) -> None:
        if self.process is not None:
            await self.process.stop(STOP_TIMEOUT_S)

    def run_info(self) -> dict[str, Any]:
        running = self.process is not None and self.process.running
        return {"url": self.url, "pid": self.process.pid if running and self.process else None,
                "config": str(self.dir / "prometheus.yml")}
