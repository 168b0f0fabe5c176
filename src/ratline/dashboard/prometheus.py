"""Rates and latencies from Prometheus (the add-on, or one the user names), as Kiali reads them.

The graph is three instant queries over the window: `rate(istio_requests_total[W])` by
edge, response code, security policy and protocol; the latency buckets' rates by edge
and `le`; TCP bytes by edge. A chart is the same as range queries over a selector. Rows
are filtered as the collector's edges are (`is_edge_record`: the destination's report,
or the source's when no sidecar answered), so both sources give the same graph; the
percentiles are computed here from the bucket rates, as `histogram_quantile` would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from ratline.dashboard.selector import Selector
from ratline.dashboard.traffic import Traffic
from ratline.observability.edges import EdgeKey, edge_key, is_edge_record
from ratline.observability.istio_metrics import (
    REQUEST_DURATION,
    REQUESTS_TOTAL,
    TCP_OPENED,
    TCP_RECEIVED,
    TCP_SENT,
)

QUERY_TIMEOUT_S = 10.0
EDGE_LABELS = (
    "reporter,source_workload,source_workload_namespace,destination_service,"
    "destination_workload,destination_workload_namespace"
)
RECORD_LABELS = f"{EDGE_LABELS},response_flags"
"""What `is_edge_record` reads: a source report is the record when the connection to
the workload it picked failed (`UF`)."""
TCP_NAMES = f'__name__=~"{TCP_SENT}|{TCP_RECEIVED}"'


class PrometheusError(RuntimeError):
    """Prometheus could not be asked, or refused the query."""


def _le(value: str) -> float:
    return float("inf") if value == "+Inf" else float(value)


class PrometheusSource:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.session = session

    async def _api(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        try:
            async with self.session.get(
                f"{self.url}{path}", params=params,
                timeout=aiohttp.ClientTimeout(total=QUERY_TIMEOUT_S),
            ) as resp:
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            raise PrometheusError(f"Prometheus at {self.url}: {reason}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise PrometheusError(f"Prometheus at {self.url}: {error}")
        return list(body["data"]["result"])

    async def query(self, promql: str) -> list[dict[str, Any]]:
        return await self._api("/api/v1/query", {"query": promql})

    async def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        params = {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}",
                  "step": f"{step:g}"}
        return await self._api("/api/v1/query_range", params)

    # ---- the graph ---------------------------------------------------------------------

    async def window(
        self, window_s: float, selector: Selector | None = None, latency: bool = True
    ) -> dict[EdgeKey, Traffic]:
        """Every edge's traffic (those `selector` chooses) over the last `window_s`;
        without `latency` the bucket query, by far the dearest, is left out. Latencies
        are the destination's (the source's own reports are kept for calls no sidecar
        answered, whose latency says little)."""
        w = f"{max(1, round(window_s))}s"
        sel = selector.promql() if selector is not None else ""
        dest = ",".join(filter(None, ('reporter="destination"', sel)))
        tcp_sel = ",".join(filter(None, (TCP_NAMES, sel)))
        queries = [
            self.query(
                f"sum by ({RECORD_LABELS},response_code,connection_security_policy,"
                f"request_protocol) (rate({REQUESTS_TOTAL}{{{sel}}}[{w}]))"
            ),
            self.query(f"sum by ({RECORD_LABELS},connection_security_policy) "
                       f"(rate({{{tcp_sel}}}[{w}]))"),
            self.query(f"sum by ({RECORD_LABELS}) (rate({TCP_OPENED}{{{sel}}}[{w}]))"),
        ]
        if latency:
            queries.append(self.query(
                f"sum by ({EDGE_LABELS},le) (rate({REQUEST_DURATION}_bucket{{{dest}}}[{w}]))"
            ))
        requests, tcp, opened, *more = await asyncio.gather(*queries)
        buckets = more[0] if more else []
        found: dict[EdgeKey, Traffic] = {}
        for labels, value in _rows(requests):
            t = found.setdefault(edge_key(labels), Traffic())
            code = labels.get("response_code", "0")
            t.by_code[code] = t.by_code.get(code, 0.0) + value
            t.mtls = t.mtls or labels.get("connection_security_policy") == "mutual_tls"
            t.protocols.add(labels.get("request_protocol") or "http")
        for labels, value in _rows(buckets, keep_zero=True):
            hit = found.get(edge_key(labels))
            if hit is not None:
                le = _le(labels.get("le", "+Inf"))
                hit.buckets[le] = hit.buckets.get(le, 0.0) + value
        for labels, value in _rows(tcp):
            t = found.setdefault(edge_key(labels), Traffic())
            t.tcp_bytes += value
            t.mtls = t.mtls or labels.get("connection_security_policy") == "mutual_tls"
            t.protocols.add("tcp")
        for labels, value in _rows(opened):
            t = found.setdefault(edge_key(labels), Traffic())
            t.tcp_connections += value
            t.protocols.add("tcp")
        return {k: t for k, t in found.items() if t.active}

    # ---- charts ------------------------------------------------------------------------

    async def series(
        self, selector: Selector, range_s: float, step_s: float, rate_s: float
    ) -> list[tuple[float, Traffic]]:
        end_at = time.time()
        start_at = end_at - range_s
        r = f"{max(1, round(rate_s))}s"
        sel = selector.promql()
        dest = ",".join(filter(None, ('reporter="destination"', sel)))
        requests, buckets, tcp = await asyncio.gather(
            self.query_range(
                f"sum by (reporter,destination_workload,response_flags,response_code,"
                f"connection_security_policy) (rate({REQUESTS_TOTAL}{{{sel}}}[{r}]))",
                start_at, end_at, step_s,
            ),
            self.query_range(
                f"sum by (reporter,destination_workload,le) "
                f"(rate({REQUEST_DURATION}_bucket{{{dest}}}[{r}]))",
                start_at, end_at, step_s,
            ),
            self.query_range(
                f"sum by (reporter,destination_workload,response_flags) "
                f"(rate({{{','.join(filter(None, (TCP_NAMES, sel)))}}}[{r}]))",
                start_at, end_at, step_s,
            ),
        )
        points: dict[float, Traffic] = {}
        for labels, at, value in _matrix(requests):
            t = points.setdefault(at, Traffic())
            code = labels.get("response_code", "0")
            t.by_code[code] = t.by_code.get(code, 0.0) + value
            t.mtls = t.mtls or labels.get("connection_security_policy") == "mutual_tls"
        for labels, at, value in _matrix(buckets):
            t = points.setdefault(at, Traffic())
            le = _le(labels.get("le", "+Inf"))
            t.buckets[le] = t.buckets.get(le, 0.0) + value
        for _labels, at, value in _matrix(tcp):
            points.setdefault(at, Traffic()).tcp_bytes += value
        return sorted(points.items())


def _rows(
    result: Iterable[dict[str, Any]], keep_zero: bool = False
) -> Iterable[tuple[dict[str, str], float]]:
    for row in result:
        labels = dict(row.get("metric") or {})
        if not is_edge_record(labels):
            continue
        try:
            value = float(row["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if value != value or (value <= 0 and not keep_zero):  # NaN or nothing
            continue
        yield labels, value


def _matrix(result: Iterable[dict[str, Any]]) -> Iterable[tuple[dict[str, str], float, float]]:
    for row in result:
        labels = dict(row.get("metric") or {})
        if not is_edge_record(labels):
            continue
        for at, raw in row.get("values") or ():
            value = float(raw)
            if value == value:
                yield labels, float(at), value
