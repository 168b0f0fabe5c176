"""A supervised Envoy (sidecar or gateway): started, waited on until ready, restarted.

Each (re)start builds a fresh `EnvoyProcess` on the same ports, so whatever points at
the proxy (the app's HTTP_PROXY, EDS endpoints) stays valid across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from ratline.agent.bootstrap import BootstrapParams, build_bootstrap
from ratline.agent.envoy import EnvoyExitedError, EnvoyProcess
from ratline.runtime.local.supervisor import Backoff, RestartPolicy
from ratline.settings import Settings

log = logging.getLogger("ratline.runner")

ENVOY_STOP_TIMEOUT_S = 5.0
DRAIN_TIMEOUT_S = 5.0
"""Longest `ratline down` waits for in-flight requests (Istio's terminationDrainDuration)."""


class SupervisedEnvoy:
    """Keeps one Envoy running; `ready` is set while the current one is LIVE."""

    def __init__(
        self,
        *,
        label: str,
        params: BootstrapParams,
        config_path: Path,
        log_path: Path,
        access_log_path: Path | None = None,
        settings: Settings,
        policy: RestartPolicy,
        on_change: Callable[[], None],
    ) -> None:
        self.label = label
        self.params = params
        self.config_path = config_path
        self.log_path = log_path
        self.access_log_path = access_log_path
        """Envoy's stdout: the access logs of `accessLogFile: /dev/stdout`."""
        self.settings = settings
        self.backoff = Backoff(policy)
        self.on_change = on_change
        self.ready = asyncio.Event()
        self.error: str | None = None
        self.envoy: EnvoyProcess | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.envoy.pid if self.envoy is not None and self.envoy.running else None

    @property
    def restarts(self) -> int:
        return self.backoff.restarts

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"envoy {self.label}")

    def _new_process(self) -> EnvoyProcess:
        return EnvoyProcess(
            envoy=self.settings.envoy,
            bootstrap=build_bootstrap(self.params),
            config_path=self.config_path,
            log_path=self.log_path,
            admin_port=self.params.admin_port,
            admin_host=self.params.admin_host,
            concurrency=self.settings.envoy_concurrency,
            log_level=self.settings.envoy_log_level,
            access_log_path=self.access_log_path,
        )

    async def _run(self) -> None:
        while True:
            envoy = self._new_process()
            self.envoy = envoy
            try:
                pid = await envoy.start()
            except OSError as exc:
                self.error = f"cannot start envoy {self.settings.envoy}: {exc}"
                log.error("%s: %s", self.label, self.error)
                self.on_change()
                return
            self.on_change()
            exited_at_start = False
            try:
                await self._wait_ready(envoy, pid)
            except EnvoyExitedError as exc:
                exited_at_start = True
                self.error = f"envoy exited at start: {exc}"
                log.error("%s: %s", self.label, self.error)
            code = await envoy.wait()
            self.ready.clear()
            delay = self.backoff.on_exit(envoy.process.uptime())
            if not exited_at_start:
                self.error = f"envoy exited with code {code}"
                log.warning(
                    "%s: envoy (pid %d) exited with code %d; restart in %.1fs; last log lines:\n%s",
                    self.label,
                    pid,
                    code,
                    delay,
                    envoy.process.log_tail(10),
                )
            else:
                log.info("%s: restarting envoy in %.1fs", self.label, delay)
            self.on_change()
            await asyncio.sleep(delay)

    async def _wait_ready(self, envoy: EnvoyProcess, pid: int) -> None:
        timeout = self.settings.ready_timeout_s
        if not await envoy.wait_ready(timeout):
            self.error = f"envoy not ready after {timeout:g}s (no config from the control plane?)"
            log.warning("%s: %s", self.label, self.error)
            self.on_change()
            await envoy.wait_ready(None)
        self.error = None
        self.ready.set()
        log.info("%s: envoy ready (pid %d, admin %d)", self.label, pid, self.params.admin_port)
        self.on_change()

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S, quiet_s: float = 0.0) -> None:
        """Envoy's graceful drain: let in-flight requests finish (at most `timeout_s`),
        and wait until none arrived for `quiet_s`."""
        if self.envoy is not None and self.envoy.running:
            drained = await self.envoy.drain(timeout_s, quiet_s)
            if not drained:
                log.warning(
                    "%s: requests still in flight after %gs of drain", self.label, timeout_s
                )

    async def stop(self, timeout_s: float = ENVOY_STOP_TIMEOUT_S) -> None:
        """Stop supervising, then SIGTERM Envoy (SIGKILL after `timeout_s`)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.ready.clear()
        if self.envoy is not None:
            await self.envoy.stop(timeout_s)
