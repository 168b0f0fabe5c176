"""An Envoy proxy process: written bootstrap, started, waited on until ready, stopped.

Used by the local runner for every sidecar and gateway. Readiness is Envoy's own: the
admin endpoint `GET /ready` answers 200 `LIVE` once the initial xDS config is applied.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from ratline.agent.bootstrap import envoy_args
from ratline.agent.process import ChildProcess

READY_POLL_INTERVAL_S = 0.05


class EnvoyExitedError(RuntimeError):
    """Envoy exited before it became ready; the message carries its last log lines."""


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


class EnvoyProcess:
    """One Envoy started from a bootstrap dict."""

    def __init__(
        self,
        *,
        envoy: str,
        bootstrap: Mapping[str, Any],
        config_path: Path,
        log_path: Path,
        admin_port: int,
        admin_host: str = "127.0.0.1",
        concurrency: int = 1,
        log_level: str = "warning",
    ) -> None:
        self.bootstrap = bootstrap
        self.config_path = config_path
        self.admin_port = admin_port
        self.admin_host = admin_host
        self.process = ChildProcess(
            envoy_args(envoy, str(config_path), concurrency=concurrency, log_level=log_level),
            log_path=log_path,
        )

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def admin_url(self) -> str:
        return f"http://{self.admin_host}:{self.admin_port}"

    async def start(self) -> int:
        """Write the bootstrap and start Envoy; its PID."""
        write_json_atomically(self.config_path, self.bootstrap)
        return await self.process.start()

    async def is_ready(self, session: aiohttp.ClientSession) -> bool:
        try:
            async with session.get(f"{self.admin_url}/ready") as resp:
                body = await resp.text()
                return resp.status == 200 and body.strip() == "LIVE"
        except (aiohttp.ClientError, OSError, TimeoutError):
            return False

    async def wait_ready(self, timeout_s: float | None) -> bool:
        """Poll `/ready` until LIVE (True) or `timeout_s` passes (False).

        Raises EnvoyExitedError if Envoy exits first.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        client_timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            while True:
                if not self.process.running:
                    raise EnvoyExitedError(self.exit_report())
                if await self.is_ready(session):
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                await asyncio.sleep(READY_POLL_INTERVAL_S)

    def exit_report(self, lines: int = 15) -> str:
        """'envoy exited with code N' plus the last lines of its log."""
        code = self.process.returncode
        tail = self.process.log_tail(lines)
        head = f"envoy exited with code {code}"
        return f"{head}; last log lines:\n{tail}" if tail else head

    async def wait(self) -> int:
        return await self.process.wait()

    async def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM (Envoy shuts down its listeners and exits), then SIGKILL after timeout."""
        return await self.process.stop(timeout_s)
