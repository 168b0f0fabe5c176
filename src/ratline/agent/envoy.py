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
DRAIN_POLL_INTERVAL_S = 0.05


class EnvoyExitedError(RuntimeError):
    """Envoy exited before it became ready; the message carries its last log lines."""


def write_json_atomically(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON to a temporary file beside `path`, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def sum_listener_stat(stats_text: str, stat: str) -> int:
    """Sum of `http.<listener>.<stat>` over the proxy's listeners, the admin one excluded."""
    total = 0
    for line in stats_text.splitlines():
        name, _, value = line.partition(":")
        if (
            name.startswith("http.")
            and not name.startswith("http.admin.")
            and name.endswith(f".{stat}")
            and value.strip().isdigit()
        ):
            total += int(value)
    return total


def count_active_requests(stats_text: str) -> int:
    """Downstream requests in flight on the proxy's listeners."""
    return sum_listener_stat(stats_text, "downstream_rq_active")


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
        access_log_path: Path | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.config_path = config_path
        self.admin_port = admin_port
        self.admin_host = admin_host
        self.process = ChildProcess(
            envoy_args(envoy, str(config_path), concurrency=concurrency, log_level=log_level),
            log_path=log_path,
            stdout_path=access_log_path,
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

    async def request_counts(self, session: aiohttp.ClientSession) -> tuple[int, int] | None:
        """(requests in flight, requests ever received) on this Envoy's listeners."""
        try:
            async with session.get(
                f"{self.admin_url}/stats", params={"filter": "downstream_rq_(active|total)$"}
            ) as resp:
                body = await resp.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return None
        return (
            sum_listener_stat(body, "downstream_rq_active"),
            sum_listener_stat(body, "downstream_rq_total"),
        )

    async def drain(self, timeout_s: float, quiet_s: float = 0.0) -> bool:
        """Envoy's graceful drain, then wait (at most `timeout_s`) until requests are done.

        `POST /drain_listeners?graceful` makes Envoy close connections as their requests
        finish (`connection: close`, HTTP/2 GOAWAY) while listeners still accept. Done
        when no request is in flight and none arrived for `quiet_s` (callers that just
        took the proxy out of load balancing give the other proxies that long to learn
        it). True when done, False on timeout or if Envoy is gone.
        """
        if not self.process.running:
            return False
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0)) as session:
            try:
                async with session.post(f"{self.admin_url}/drain_listeners?graceful") as resp:
                    await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError):
                return False
            last_total, quiet_since = -1, time.monotonic()
            while time.monotonic() < deadline and self.process.running:
                counts = await self.request_counts(session)
                now = time.monotonic()
                if counts is not None:
                    active, total = counts
                    if total != last_total:
                        last_total, quiet_since = total, now
                    if active == 0 and now - quiet_since >= quiet_s:
                        return True
                await asyncio.sleep(DRAIN_POLL_INTERVAL_S)
        return False

    async def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM (Envoy shuts down its listeners and exits), then SIGKILL after timeout."""
        return await self.process.stop(timeout_s)
