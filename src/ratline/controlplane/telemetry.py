"""The control plane's telemetry: its own metrics (Istio's pilot_* names), Prometheus
service discovery for the mesh, the embedded span store, and the service graph's edges.

`ControlPlaneTelemetry.attach(cp)` hooks into the xDS server (an observer of what it
sends and what proxies reject, and the OTLP trace receiver on the xDS port); the admin
API serves what it knows (docs/admin-api.md).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from ratline import __version__
from ratline.observability.agent_http import fetch_envoy_stats
from ratline.observability.edges import Edge, edges
from ratline.observability.labels import identity
from ratline.observability.merge import istio_series
from ratline.observability.metrics import Counter, Gauge, Histogram, Registry
from ratline.observability.metrics import render_process_metrics as process_metrics
from ratline.observability.otlp import trace_service_handler
from ratline.observability.peer_metadata import PeerMetadata
from ratline.observability.spans import SpanStore
from ratline.registry.instances import ProxyKind, WorkloadInstance
from ratline.xds.types import SHORT_NAMES

if TYPE_CHECKING:
    from ratline.controlplane.app import ControlPlane

PROXY_JOB = "envoy-stats"
CONTROL_PLANE_JOB = "istiod"
METRICS_PATH = "/stats/prometheus"
EDGES_FETCH_TIMEOUT_S = 3.0
_LABEL_NAME = re.compile(r"[^a-zA-Z0-9_]")


def peer_of(instance: WorkloadInstance) -> PeerMetadata:
    """A registered instance's identity, as its proxy's peers see it."""
    return PeerMetadata(
        instance.name, instance.namespace, instance.workload, dict(instance.labels),
        instance.service_account,
    )


def _type(type_url: str) -> str:
    return SHORT_NAMES.get(type_url, type_url.rsplit(".", 1)[-1]).lower()


class ControlPlaneTelemetry:
    """Metrics, service discovery, spans and edges of one control plane."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.spans = SpanStore()
        self.registry = Registry()
        add = self.registry.add
        self.pushes = add(Counter("pilot_xds_pushes", "xDS responses sent, by type."))
        self.rejects = add(Counter("pilot_total_xds_rejects", "xDS responses proxies NACKed."))
        self.rejects_by_type = add(
            Counter("pilot_xds_rejects", "xDS responses proxies NACKed, by type.")
        )
        self.validation_failed = add(
            Counter("galley_validation_failed", "Resources refused at apply, by kind.")
        )
        self.convergence = add(
            Histogram(
                "pilot_proxy_convergence_time",
                "Seconds from a push being asked for until a proxy was sent its config.",
            )
        )
        self.queue_time = add(
            Histogram(
                "pilot_proxy_queue_time", "Seconds a proxy's push waited before being computed."
            )
        )
        self.push_time = add(
            Histogram("pilot_xds_push_time", "Seconds to compute and write a push, by type.")
        )
        add(
            Gauge(
                "pilot_xds", "Proxies connected over xDS, by version and xDS type.", self._connected
            )
        )
        add(Gauge("pilot_services", "Services known to the control plane.", self._services))
        add(
            Gauge(
                "pilot_info", "Control plane version.", lambda: [((("version", __version__),), 1.0)]
            )
        )
        add(
            Gauge(
                "pilot_xds_spans_stored",
                "Spans kept by the embedded trace store.",
                lambda: [((), float(len(self.spans)))],
            )
        )

    @classmethod
    def attach(cls, cp: ControlPlane) -> ControlPlaneTelemetry:
        """Hook into the xDS server (before it starts)."""
        telemetry = cls(cp)
        cp.xds.observer = telemetry
        cp.xds.extra_handlers.append(trace_service_handler(telemetry.spans.add))
        return telemetry

    # ---- XdsObserver --------------------------------------------------------------------

    def sent(self, type_url: str, queued_s: float, push_s: float, write_s: float) -> None:
        labels = (("type", _type(type_url)),)
        self.pushes.inc(labels)
        self.push_time.observe(push_s + write_s, labels)
        if queued_s:
            self.convergence.observe(queued_s)
            self.queue_time.observe(max(0.0, queued_s - push_s - write_s))

    def rejected(self, type_url: str) -> None:
        self.rejects.inc()
        self.rejects_by_type.inc((("type", _type(type_url)),))

    def refused(self, kinds: Iterable[str]) -> None:
        for kind in kinds:
            self.validation_failed.inc((("kind", kind or "unknown"),))

    def _connected(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        by_mode: dict[str, float] = {}
        for status in self.cp.xds.status():
            if status.connected:
                by_mode[status.mode] = by_mode.get(status.mode, 0.0) + 1
        return [((("type", mode), ("version", __version__)), n) for mode, n in by_mode.items()]

    def _services(self) -> list[tuple[tuple[tuple[str, str], ...], float]]:
        snapshot = self.cp.snapshot
        return [((), float(len(snapshot.services) if snapshot else 0))]

    def metrics_text(self) -> str:
        return self.registry.render() + process_metrics()

    # ---- Prometheus HTTP service discovery ---------------------------------------------

    def _proxies(self) -> list[WorkloadInstance]:
        return [i for i in self.cp.registry.instances() if i.sidecar and i.sidecar.stats_port]

    def http_sd(self, job: str, admin_address: str) -> list[dict[str, Any]]:
        """Prometheus `http_sd_configs` target groups: every proxy's metrics port with
        Istio's pod labels, or the control plane itself."""
        if job == CONTROL_PLANE_JOB:
            return [
                {
                    "targets": [admin_address],
                    "labels": {
                        "__metrics_path__": "/metrics",
                        "app": "istiod",
                        "namespace": "istio-system",
                        "pod": "istiod",
                    },
                }
            ]
        groups = []
        for inst in sorted(self._proxies(), key=lambda i: (i.namespace, i.name)):
            assert inst.sidecar is not None
            labels = {_LABEL_NAME.sub("_", k): v for k, v in sorted(inst.labels.items())}
            labels.update(
                __metrics_path__=METRICS_PATH,
                namespace=inst.namespace,
                pod=inst.name,
                workload=inst.workload,
                proxy_type="router" if inst.kind is ProxyKind.ROUTER else "sidecar",
            )
            groups.append(
                {"targets": [f"{inst.address}:{inst.sidecar.stats_port}"], "labels": labels}
            )
        return groups

    # ---- edges --------------------------------------------------------------------------

    async def read_edges(self) -> list[Edge]:
        """The service graph's edges, read from every proxy's Envoy stats now."""
        proxies = [
            (f"{i.address}:{i.sidecar.admin_port}", identity(peer_of(i)))
            for i in self.cp.registry.instances()
            if i.sidecar is not None and i.sidecar.admin_port
        ]
        async with aiohttp.ClientSession() as session:
            results = await asyncio.gather(
                *(fetch_envoy_stats(session, a, EDGES_FETCH_TIMEOUT_S) for a, _ in proxies),
                return_exceptions=True,
            )
        texts = [(r, own) for r, (_, own) in zip(results, proxies, strict=True)
                 if isinstance(r, str)]
        return edges(istio_series(texts))

    # ---- admin API ----------------------------------------------------------------------

    def add_routes(self, app: web.Application, admin_address: Any) -> None:
        """`admin_address()` gives the admin API's address (known once it listens)."""

        async def metrics(_req: web.Request) -> web.Response:
            return web.Response(
                text=self.metrics_text(), content_type="text/plain", charset="utf-8"
            )

        async def sd(req: web.Request) -> web.Response:
            return web.json_response(self.http_sd(req.query.get("job", PROXY_JOB), admin_address()))

        async def traces(req: web.Request) -> web.Response:
            try:
                limit = int(req.query.get("limit", "20"))
                raw_min = req.query.get("min_duration_ms")
                min_ms = float(raw_min) if raw_min else None
            except ValueError:
                return web.json_response(
                    {"errors": [{"message": "limit and min_duration_ms must be numbers"}]},
                    status=400,
                )
            found = self.spans.traces(
                service=req.query.get("service") or None, min_duration_ms=min_ms, limit=limit
            )
            return web.json_response(
                {"traces": [t.summary() for t in found], "services": self.spans.services()}
            )

        async def trace(req: web.Request) -> web.Response:
            found = self.spans.trace(req.match_info["trace_id"])
            if found is None:
                return web.json_response(
                    {"errors": [{"message": "trace_id: no such trace in the store"}]},
                    status=404,
                )
            return web.json_response(found.to_json())

        async def graph(_req: web.Request) -> web.Response:
            return web.json_response({"edges": [e.to_json() for e in await self.read_edges()]})

        app.router.add_get("/metrics", metrics)
        app.router.add_get("/v1/prometheus/sd", sd)
        app.router.add_get("/v1/traces", traces)
        app.router.add_get("/v1/traces/{trace_id}", trace)
        app.router.add_get("/v1/telemetry/edges", graph)
