"""What the dashboard reads from the control plane: the hook's contract.

The control plane fills a `MeshSources` (`ratline.controlplane.dashboard_wiring`); the
dashboard knows nothing of how: the same data the CLI reads through the admin API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ratline.api.errors import ConfigMessage
from ratline.model.snapshot import MeshSnapshot
from ratline.observability.edges import Edge


@dataclass(frozen=True)
class MeshSources:
    snapshot: Callable[[], MeshSnapshot | None]
    """The snapshot in force: services, instances, config."""
    findings: Callable[[], list[ConfigMessage]]
    """Every finding about the running config (`/v1/analyze`'s messages)."""
    proxy_status: Callable[[], list[dict[str, Any]]]
    """`/v1/proxy-status`'s proxies."""
    read_edges: Callable[[], Awaitable[list[Edge]]]
    """The service graph's edges with their totals, read from every proxy now."""
    prometheus_url: str = ""
    """A Prometheus with the mesh's metrics ("" : none; the collector's counters serve)."""
    scrape_interval_s: float = 15.0
    """That Prometheus' scrape interval: the shortest rate window worth asking for is
    a few of these."""
