"""What every control plane process serves, whatever its sources: xDS (mTLS), the CSR
endpoint and the admin API, plus the ready file and the wait for SIGTERM/SIGINT.

`ratline.controlplane.__main__` composes it with a mesh directory; `ratline.controlplane.
kubernetes` with a Kubernetes cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratline.api.errors import ConfigMessage
from ratline.config.persist import write_atomic
from ratline.controlplane.admin import AdminApi
from ratline.controlplane.app import ControlPlane
from ratline.controlplane.ca_http import Authenticator, CertificateApi
from ratline.controlplane.dashboard_wiring import dashboard_for
from ratline.controlplane.security import ControlPlaneSecurity, authorize_node
from ratline.controlplane.telemetry import ControlPlaneTelemetry
from ratline.settings import Settings

log = logging.getLogger("ratline.controlplane")


@dataclass
class Serving:
    """The running servers and their addresses (`info` is what the ready file holds)."""

    admin: AdminApi
    ca_api: CertificateApi
    info: dict[str, Any] = field(default_factory=dict)

    async def stop(self, cp: ControlPlane) -> None:
        await self.admin.stop()
        await self.ca_api.stop()
        await cp.stop()


async def start_serving(
    cp: ControlPlane,
    security: ControlPlaneSecurity,
    settings: Settings,
    xds_port: int | None,
    admin_port: int | None,
    authenticator: Authenticator | None = None,
    findings: Callable[[], list[ConfigMessage]] | None = None,
    prometheus_url: str = "",
) -> Serving:
    """Start xDS, the CSR endpoint and the admin API with the dashboard (ports None: the
    settings'; `prometheus_url`: the runner's Prometheus add-on, for the dashboard)."""
    telemetry = ControlPlaneTelemetry.attach(cp)
    admin = AdminApi(cp, token=security.admin_token, findings=findings, telemetry=telemetry)
    admin.dashboard = dashboard_for(
        cp, telemetry, security.admin_token, admin.findings, prometheus_url
    )
    credentials = security.xds_credentials() if settings.xds_tls else None
    if credentials is not None:
        trust_domain = security.certificates.trust_domain

        def service_account_of(node_id: str) -> str | None:
            snapshot = cp.snapshot
            instance = snapshot.instance(node_id) if snapshot is not None else None
            return instance.service_account if instance is not None else None

        cp.xds.authorize = lambda node, peers: authorize_node(
            node, peers, trust_domain, service_account_of
        )
    bound_xds = await cp.start(xds_port if xds_port is not None else settings.xds_port, credentials)
    ca_api = CertificateApi(
        security.certificates, security.server_chain_pem, security.server_key_pem, authenticator
    )
    ca_port = await ca_api.start(settings.bind_address, settings.ca_port)
    bound_admin = await admin.start(
        settings.bind_address, admin_port if admin_port is not None else settings.admin_port
    )
    host = settings.bind_address
    log.info("serving xDS on %s:%d, admin API on %s:%d", host, bound_xds, host, bound_admin)
    info = {
        "pid": os.getpid(),
        "xds": f"{host}:{bound_xds}",
        "admin": f"{host}:{bound_admin}",
        "ca": f"{host}:{ca_port}",
        "xds_tls": credentials is not None,
    }
    return Serving(admin, ca_api, info)


def write_ready_file(path: Path | None, info: dict[str, Any]) -> None:
    if path is not None:
        write_atomic(path, json.dumps(info).encode())


async def until_signalled() -> None:
    """Return on SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
