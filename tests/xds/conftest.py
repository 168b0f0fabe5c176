"""Fixtures for the xDS tests: real Envoy processes bootstrapped against a test server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ratline.agent.bootstrap import BootstrapParams, build_bootstrap, envoy_args
from ratline.settings import Settings


@dataclass
class EnvoyProcess:
    process: subprocess.Popen[bytes]
    admin_address_path: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    async def admin_url(self, timeout_s: float = 5.0) -> str:
        """Envoy's admin base URL, once Envoy has written its bound admin address."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.admin_address_path.exists():
                address = self.admin_address_path.read_text().strip()
                if address:
                    return f"http://{address}"
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.02)
        raise AssertionError(f"Envoy gave no admin address; log:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


StartEnvoy = Callable[..., EnvoyProcess]


@pytest.fixture
def start_envoy(tmp_path: Path) -> Iterator[StartEnvoy]:
    """Start Envoys bootstrapped with `build_bootstrap`; every one is stopped by PID."""
    started: list[EnvoyProcess] = []
    envoy = Settings.from_env().envoy

    def start(node_id: str, xds_port: int, *, delta: bool) -> EnvoyProcess:
        index = len(started)
        params = BootstrapParams(
            node_id=node_id,
            cluster="test.default",
            xds_host="127.0.0.1",
            xds_port=xds_port,
            admin_port=0,
            delta=delta,
        )
        config_path = tmp_path / f"envoy-{index}.json"
        config_path.write_text(json.dumps(build_bootstrap(params)))
        admin_address_path = tmp_path / f"envoy-{index}.admin"
        log_path = tmp_path / f"envoy-{index}.log"
        args = envoy_args(envoy, str(config_path), concurrency=1, log_level="warning")
        args += ["--admin-address-path", str(admin_address_path), "--log-path", str(log_path)]
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        proxy = EnvoyProcess(process, admin_address_path, log_path)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()
