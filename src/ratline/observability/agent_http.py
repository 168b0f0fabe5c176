"""The agent's metrics port per proxy: Istio's `:15020/stats/prometheus`, merged.

Each proxy gets its own port (as each pod has its own 15020), served by one aiohttp
application: a scrape fetches the proxy's Envoy stats from its admin port and answers
with Istio's `istio_*` series (`ratline.observability.merge`) and Envoy's own `envoy_*`.
The local runner runs one for all its proxies; a per-pod agent would run it for one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
from aiohttp import web

from ratline.observability.labels import Identity, identity
from ratline.observability.merge import merged_metrics
from ratline.observability.peer_metadata import PeerMetadata

log = logging.getLogger("ratline.observability")

METRICS_PATH = "/stats/prometheus"
ENVOY_STATS_TIMEOUT_S = 5.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def fetch_envoy_stats(
    session: aiohttp.ClientSession, admin: str, timeout_s: float = ENVOY_STATS_TIMEOUT_S
) -> str:
    """Envoy's Prometheus stats from its admin address `host:port`."""
    async with session.get(
        f"http://{admin}{METRICS_PATH}", timeout=aiohttp.ClientTimeout(total=timeout_s)
    ) as resp:
        resp.raise_for_status()
        return await resp.text()


class ProxyMetricsPorts:
    """Serves `/stats/prometheus` for many proxies, one port each."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self._admin_by_port: dict[int, tuple[str, Identity]] = {}
        self._sites: dict[int, web.TCPSite] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> web.AppRunner:
        if self._runner is None:
            app = web.Application()
            app.router.add_get(METRICS_PATH, self._metrics)
            app.router.add_get("/healthz/ready", self._ready)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
            await self._runner.setup()
            self._session = aiohttp.ClientSession()
        return self._runner

    async def add(self, port: int, envoy_admin: str, own: PeerMetadata) -> None:
        """Serve the proxy whose Envoy admin is at `envoy_admin` on `port`; `own` is who
        its workload is (the node metadata the agent gave it)."""
        async with self._lock:
            if port in self._sites:
                self._admin_by_port[port] = (envoy_admin, identity(own))
                return
            runner = await self._ensure()
            site = web.TCPSite(runner, self.host, port, reuse_address=True)
            await site.start()
            self._sites[port] = site
            self._admin_by_port[port] = (envoy_admin, identity(own))

    async def remove(self, port: int) -> None:
        async with self._lock:
            site = self._sites.pop(port, None)
            self._admin_by_port.pop(port, None)
            if site is not None:
                await site.stop()

    async def close(self) -> None:
        async with self._lock:
            for site in self._sites.values():
                with contextlib.suppress(Exception):
                    await site.stop()
            self._sites.clear()
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            if self._session is not None:
                await self._session.close()
                self._session = None

    def _admin_for(self, request: web.Request) -> tuple[str, Identity] | None:
        sockname: Any = request.transport.get_extra_info("sockname") if request.transport else None
        port = int(sockname[1]) if sockname else 0
        return self._admin_by_port.get(port)

    async def _metrics(self, request: web.Request) -> web.Response:
        found = self._admin_for(request)
        if found is None or self._session is None:
            return web.Response(status=404, text="no proxy on this port\n")
        admin, own = found
        try:
            text = await fetch_envoy_stats(self._session, admin)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.Response(status=503, text=f"envoy stats unavailable: {exc!r}\n")
        body = merged_metrics(text, own)
        return web.Response(body=body.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def _ready(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n" if self._admin_for(request) else "unknown\n")
