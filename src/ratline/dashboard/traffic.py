"""Traffic over a window, as rates (pure): what the graph and the charts show of an edge.

Both data sources end here: Prometheus gives rates per label set (`rate(...[W])`), the
collector gives the difference of two reads of the proxies' counters divided by the time
between them. Either way an edge's traffic is requests per second by response code,
cumulative latency bucket rates (Prometheus' `le` form) and TCP bytes per second, and
its percentiles come from the buckets as Prometheus' `histogram_quantile` computes them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.observability.edges import Edge, EdgeKey

QUANTILES = (0.5, 0.9, 0.99)


def _le(value: str) -> float:
    return math.inf if value == "+Inf" else float(value)


def is_error(code: str) -> bool:
    """A 5xx, or no response at all (code 0), as Istio's and Kiali's error rate count."""
    return code.startswith("5") or code == "0"


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Prometheus' `histogram_quantile` over cumulative bucket counts (or rates) by upper
    bound: linear interpolation inside the bucket the rank falls in; the last finite
    bound when it falls in the +Inf bucket; None without observations."""
    bounds = sorted(buckets)
    if not bounds or not math.isinf(bounds[-1]):
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


@dataclass
class Traffic:
    """One edge's (or a sum of edges') traffic over a window, per second."""

    by_code: dict[str, float] = field(default_factory=dict)
    """Requests per second by response code."""
    buckets: dict[float, float] = field(default_factory=dict)
    """Requests per second at or under each latency bound (ms), cumulative; +Inf: all."""
    tcp_bytes: float = 0.0
    """TCP bytes per second, both directions."""
    tcp_connections: float = 0.0
    """TCP connections opened per second."""
    mtls: bool = False
    protocols: set[str] = field(default_factory=set)
    since_start: bool = False
    """The numbers are totals since the proxies started, not rates: the collector had
    only one read yet. Error rate and percentiles still hold; rates are unknown."""

    @property
    def rps(self) -> float:
        return sum(self.by_code.values())

    @property
    def error_rps(self) -> float:
        return sum(v for code, v in self.by_code.items() if is_error(code))

    @property
    def error_rate(self) -> float | None:
        rps = self.rps
        return self.error_rps / rps if rps > 0 else None

    def quantile(self, q: float) -> float | None:
        return histogram_quantile(q, self.buckets)

    @property
    def active(self) -> bool:
        """Whether anything flowed in the window."""
        return self.rps > 0 or self.tcp_bytes > 0 or self.tcp_connections > 0

    def add(self, other: Traffic) -> None:
        for code, v in other.by_code.items():
            self.by_code[code] = self.by_code.get(code, 0.0) + v
        for le, v in other.buckets.items():
            self.buckets[le] = self.buckets.get(le, 0.0) + v
        self.tcp_bytes += other.tcp_bytes
        self.tcp_connections += other.tcp_connections
        self.mtls = self.mtls or other.mtls
        self.protocols |= other.protocols
        self.since_start = self.since_start or other.since_start

    def to_json(self) -> dict[str, Any]:
        error_rate = self.error_rate
        if self.since_start:
            rates: dict[str, Any] = {"rps": None, "error_rps": None, "tcp_bytes_per_s": None,
                                     "requests_since_start": _round(self.rps)}
        else:
            rates = {"rps": _round(self.rps), "error_rps": _round(self.error_rps),
                     "tcp_bytes_per_s": _round(self.tcp_bytes),
                     "tcp_connections_per_s": _round(self.tcp_connections)}
        return {
            **rates,
            "error_rate": None if error_rate is None else round(error_rate, 4),
            "codes": {c: _round(v) for c, v in sorted(self.by_code.items()) if v > 0},
            **{f"p{round(q * 100)}_ms": _round_opt(self.quantile(q)) for q in QUANTILES},
            "mtls": self.mtls,
            "protocols": sorted(self.protocols),
        }


def _round(value: float) -> float:
    return round(value, 4)


def _round_opt(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def delta(newer: Edge, older: Edge | None, seconds: float | None) -> Traffic:
    """The traffic of one edge between two reads of its totals, `seconds` apart (None:
    there is no older read, the totals since the start are kept as they are). A counter
    that went down (its proxy restarted) counts from zero, as Prometheus' rate."""
    per = seconds or 1.0

    def diff(now: float, before: float) -> float:
        return now - before if now >= before else now

    old_codes = older.by_code if older else {}
    old_buckets = older.duration_buckets if older else {}
    by_code = {c: diff(v, old_codes.get(c, 0.0)) / per for c, v in newer.by_code.items()}
    buckets = {
        _le(le): diff(v, old_buckets.get(le, 0.0)) / per
        for le, v in newer.duration_buckets.items()
    }
    tcp = diff(newer.tcp_bytes, older.tcp_bytes if older else 0.0) / per
    opened = diff(newer.tcp_opened, older.tcp_opened if older else 0.0) / per
    return Traffic(
        {c: v for c, v in by_code.items() if v > 0},
        buckets,
        tcp,
        opened,
        newer.mtls,
        set(newer.protocols),
        since_start=seconds is None,
    )


def deltas(
    newer: Mapping[EdgeKey, Edge], older: Mapping[EdgeKey, Edge] | None, seconds: float | None
) -> dict[EdgeKey, Traffic]:
    """Every edge's traffic between two reads; only edges where something flowed."""
    found = {}
    for key, edge in newer.items():
        traffic = delta(edge, (older or {}).get(key), seconds)
        if traffic.active:
            found[key] = traffic
    return found


def total(traffics: Iterable[Traffic]) -> Traffic:
    summed = Traffic()
    for t in traffics:
        summed.add(t)
    return summed
