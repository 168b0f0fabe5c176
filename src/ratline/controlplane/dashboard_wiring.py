"""The control plane's hook for the dashboard: what it may read, and on which port.

The dashboard (`ratline.dashboard`, a layer below) gets a `MeshSources` of plain
callables over the control plane's store, registry, xDS server and telemetry, and adds
its routes to the admin API (docs/admin-api.md).
"""

from __future__ import annotations

from collections.abc import Callable

from ratline.api.errors import ConfigMessage
from ratline.api.schemas.common import parse_duration
from ratline.controlplane.app import ControlPlane
from ratline.controlplane.status import proxy_status_json
from ratline.controlplane.telemetry import ControlPlaneTelemetry
from ratline.dashboard.http_api import Dashboard
from ratline.dashboard.sources import MeshSources


def dashboard_for(
    cp: ControlPlane, telemetry: ControlPlaneTelemetry, admin_token: str | None,
    findings: Callable[[], list[ConfigMessage]], prometheus_url: str = "",
) -> Dashboard:
    """The dashboard of this control plane; Prometheus at `prometheus_url` when given (the
    add-on's, passed by the runner), else `settings.dashboard_prometheus`."""
    settings = cp.settings
    url = settings.dashboard_prometheus or prometheus_url
    if url.lower() == "off":
        url = ""
    sources = MeshSources(
        snapshot=lambda: cp.snapshot,
        findings=findings,
        proxy_status=lambda: proxy_status_json(cp),
        read_edges=telemetry.read_edges,
        prometheus_url=url,
        scrape_interval_s=parse_duration(settings.prometheus_scrape_interval),
    )
    return Dashboard(sources, admin_token)
