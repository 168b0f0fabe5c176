"""The pod agent's HTTP endpoints: readiness (15021), app probes and metrics (15020).

- `GET /healthz/ready` (both ports): 200 once Envoy has its first config (`/ready`
  answers LIVE) and the agent is not draining, 503 otherwise: the sidecar's readiness
  and startup probe.
- `GET /app-health/CONTAINER/livez|readyz|startupz` (15020): the app's original probe
  (from ISTIO_KUBE_APP_PROBERS), run by the agent from inside the pod: `httpGet` to
  127.0.0.1 (2xx/3xx pass), `tcpSocket` connect. The agent's UID is never captured, so
  these reach the app directly, as the kubelet's probe would without a mesh.
- `GET /stats/prometheus` (15020): Envoy's Prometheus stats merged with the agent's own
  (`istio_agent_*`), Istio's merged endpoint for `prometheus.io/*` scrapes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web

DEFAULT_PROBE_TIMEOUT_S = 1.0
APP_HOST = "127.0.0.1"


async def run_probe(prober: Mapping[str, Any]) -> tuple[bool, str]:
    """(passed, why) for one original probe."""
    timeout = float(prober.get("timeoutSeconds") or DEFAULT_PROBE_TIMEOUT_S)
    if "tcpSocket" in prober:
        port = int(prober["tcpSocket"]["port"])
        try:
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(APP_HOST, port), timeout
            )
        except (OSError, TimeoutError) as exc:
            return False, f"tcp {port}: {exc!r}"
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True, f"tcp {port}: connected"
    http = prober.get("httpGet") or {}
    scheme = str(http.get("scheme") or "HTTP").lower()
    url = f"{scheme}://{APP_HOST}:{int(http['port'])}{http.get('path') or '/'}"
    headers = {str(h["name"]): str(h["value"]) for h in http.get("httpHeaders") or ()}
    if http.get("host"):
        headers["Host"] = str(http["host"])
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s,
            s.get(url, headers=headers, ssl=False, allow_redirects=False) as resp,
        ):
            return 200 <= resp.status < 400, f"{url}: {resp.status}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return False, f"{url}: {exc!r}"


class PodHealth:
    """The endpoints' application; `ready` and `envoy_stats` are the agent's."""

    def __init__(
        self,
        probers: Mapping[str, Any],
        ready: Callable[[], Any],
        envoy_stats: Callable[[], Any],
        agent_metrics: Callable[[], str],
    ) -> None:
        self.probers = dict(probers)
        self.ready = ready
        self.envoy_stats = envoy_stats
        self.agent_metrics = agent_metrics

    def readiness_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz/ready", self.readiness)
        return app

    def status_app(self) -> web.Application:
        app = self.readiness_app()
        app.router.add_get("/app-health/{container}/{kind}", self.app_health)
        app.router.add_get("/stats/prometheus", self.metrics)
        return app

    async def readiness(self, request: web.Request) -> web.Response:
        if await self.ready():
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    async def app_health(self, request: web.Request) -> web.Response:
        prober = self.probers.get(request.path)
        if prober is None:
            return web.Response(status=404, text=f"no probe {request.path}\n")
        passed, why = await run_probe(prober)
        return web.Response(status=200 if passed else 503, text=why + "\n")

    async def metrics(self, request: web.Request) -> web.Response:
        envoy = await self.envoy_stats()
        body = (envoy or "") + self.agent_metrics()
        return web.Response(text=body, content_type="text/plain")
