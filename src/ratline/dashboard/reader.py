"""Where the traffic comes from: Prometheus when there is one, else the collector.

`source=auto` (the default) asks Prometheus and falls back to the collector's counters
when Prometheus is not configured or does not answer (saying why in `note`);
`prometheus` and `collector` force one. Windows and chart ranges are clamped to sane
bounds: Prometheus' rate needs a few scrapes in its window.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from ratline.dashboard.collector import CollectorHistory
from ratline.dashboard.prometheus import PrometheusError, PrometheusSource
from ratline.dashboard.selector import Selector
from ratline.dashboard.traffic import QUANTILES, Traffic
from ratline.observability.edges import EdgeKey

SOURCES = ("auto", "prometheus", "collector")
MIN_WINDOW_S = 5.0
MAX_WINDOW_S = 6 * 3600.0
CHART_POINTS = 60
T = TypeVar("T")


class BadQuery(ValueError):
    """A query parameter out of range; the message names it."""


def parse_seconds(raw: str | None, default: float, name: str) -> float:
    """`60`, `60s`, `5m`, `1h` → seconds, within the allowed window."""
    if not raw:
        return default
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (raw[:-1], raw[-1]) if raw[-1] in units else (raw, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        raise BadQuery(f"{name}: not a duration: {raw!r} (e.g. 60s, 5m, 1h)") from None
    if not MIN_WINDOW_S <= value <= MAX_WINDOW_S:
        raise BadQuery(f"{name}: must be between {MIN_WINDOW_S:g}s and {MAX_WINDOW_S:g}s")
    return value


def parse_source(raw: str | None) -> str:
    source = raw or "auto"
    if source not in SOURCES:
        raise BadQuery(f"source: must be one of {', '.join(SOURCES)}")
    return source


@dataclass
class TrafficAnswer:
    traffic: dict[EdgeKey, Traffic]
    source: str
    """`prometheus` or `collector`."""
    window_s: float | None
    """Seconds the rates cover (the collector's reads may cover less than asked);
    None: the collector has one read, numbers are totals since the proxies started."""
    note: str = ""

    def meta(self) -> dict[str, Any]:
        return {"source": self.source, "window_s": self.window_s, "note": self.note,
                "generated_at": time.time()}


class TrafficReader:
    def __init__(self, collector: CollectorHistory, prometheus_url: str,
                 scrape_interval_s: float) -> None:
        self.collector = collector
        self.prometheus_url = prometheus_url
        self.scrape_interval_s = scrape_interval_s
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        await self.collector.stop()
        if self._session is not None:
            await self._session.close()

    def _prometheus(self) -> PrometheusSource | None:
        return PrometheusSource(self.prometheus_url, self.session) if self.prometheus_url else None

    async def _from_prometheus(self, source: str, ask: Callable[[PrometheusSource], Awaitable[T]]
                               ) -> tuple[T | None, str]:
        """Prometheus' answer when it should and can give one; else None and why not
        (`source=prometheus` raises instead of falling back)."""
        prometheus = self._prometheus()
        if source == "collector":
            return None, ""
        if prometheus is None:
            if source == "prometheus":
                raise PrometheusError("no Prometheus is configured for the dashboard")
            return None, ""
        try:
            return await ask(prometheus), ""
        except PrometheusError as exc:
            if source == "prometheus":
                raise
            return None, f"{exc}; from the proxies' counters instead"

    async def _collector(self) -> CollectorHistory:
        self.collector.touch()
        await self.collector.refresh()
        return self.collector

    async def window(
        self, window_s: float, source: str = "auto", selector: Selector | None = None,
        latency: bool = True,
    ) -> TrafficAnswer:
        """The edges' traffic over the window (only those `selector` chooses; latencies
        only when asked for `latency`, Prometheus' dearest query)."""
        rate_window = max(window_s, 4 * self.scrape_interval_s)
        found, note = await self._from_prometheus(
            source, lambda p: p.window(rate_window, selector, latency)
        )
        if found is not None:
            return TrafficAnswer(found, "prometheus", rate_window)
        collected, covered = (await self._collector()).window(window_s)
        if selector is not None:
            collected = {k: t for k, t in collected.items() if selector.matches(k)}
        return TrafficAnswer(collected, "collector", covered, note)

    async def chart(self, selector: Selector, range_s: float, source: str = "auto"
                    ) -> dict[str, Any]:
        """A selector's golden signals over the last `range_s`, about `CHART_POINTS`
        points: `{"source", "step_s", "points": [{"t", "rps", "error_rate", "p50_ms",
        …}]}`."""
        step = max(range_s / CHART_POINTS, 1.0)
        rate = max(2 * step, 4 * self.scrape_interval_s)
        points, note = await self._from_prometheus(
            source, lambda p: p.series(selector, range_s, step, rate)
        )
        if points is not None:
            where, step_s = "prometheus", step
        else:
            points = (await self._collector()).series(selector, range_s)
            where, step_s = "collector", self.collector.interval_s
        return {"source": where, "step_s": step_s, "note": note,
                "points": [_point(t, traffic) for t, traffic in points]}


def _point(at: float, traffic: Traffic) -> dict[str, Any]:
    error_rate = traffic.error_rate
    point: dict[str, Any] = {
        "t": round(at, 3), "rps": round(traffic.rps, 4),
        "error_rate": None if error_rate is None else round(error_rate, 4),
        "tcp_bytes_per_s": round(traffic.tcp_bytes, 2),
    }
    for q in QUANTILES:
        value = traffic.quantile(q)
        point[f"p{round(q * 100)}_ms"] = None if value is None else round(value, 2)
    return point
