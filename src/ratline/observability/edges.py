"""The service graph's edges from Istio's series (pure): who called whom, how often.

Each edge is one (source workload, destination service, destination workload) triple,
from the destination's reports when the destination has a sidecar, else from the
source's (calls that never reached a sidecar: faults, no upstream, outside services).
Counts are totals since the proxies started; a caller computes rates from two reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ratline.observability.istio_metrics import (
    DESTINATION,
    REQUEST_DURATION,
    REQUESTS_TOTAL,
    SOURCE,
    TCP_RECEIVED,
    TCP_SENT,
    UNKNOWN,
)
from ratline.observability.merge import IstioSeries

EdgeKey = tuple[str, str, str, str, str]
"""(source_workload, source_namespace, destination_service, destination_workload,
destination_namespace)."""


@dataclass
class Edge:
    key: EdgeKey
    requests: float = 0.0
    by_code: dict[str, float] = field(default_factory=dict)
    errors: float = 0.0
    """Responses with a 5xx code (or 0: no response)."""
    duration_ms_sum: float = 0.0
    duration_count: float = 0.0
    tcp_bytes: float = 0.0
    mtls: bool = False
    protocols: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, Any]:
        source, source_ns, service, workload, namespace = self.key
        return {
            "source": {"workload": source, "namespace": source_ns},
            "destination": {"service": service, "workload": workload, "namespace": namespace},
            "requests": self.requests,
            "by_response_code": dict(sorted(self.by_code.items())),
            "errors": self.errors,
            "mean_duration_ms": round(self.duration_ms_sum / self.duration_count, 3)
            if self.duration_count
            else None,
            "tcp_bytes": self.tcp_bytes,
            "mtls": self.mtls,
            "protocols": sorted(self.protocols),
        }


def _key(labels: dict[str, str]) -> EdgeKey:
    return (
        labels.get("source_workload", UNKNOWN),
        labels.get("source_workload_namespace", UNKNOWN),
        labels.get("destination_service", UNKNOWN),
        labels.get("destination_workload", UNKNOWN),
        labels.get("destination_workload_namespace", UNKNOWN),
    )


def _counts(labels: dict[str, str]) -> bool:
    """Whether this reporter's series is the edge's record (no double counting)."""
    if labels.get("reporter") == DESTINATION:
        return True
    return labels.get("reporter") == SOURCE and labels.get("destination_workload") == UNKNOWN


def edges(series: IstioSeries) -> list[Edge]:
    found: dict[EdgeKey, Edge] = {}

    def edge(labels: dict[str, str]) -> Edge:
        key = _key(labels)
        return found.setdefault(key, Edge(key))

    for label_set, value in series.counters.get(REQUESTS_TOTAL, {}).items():
        labels = dict(label_set)
        if not _counts(labels):
            continue
        e = edge(labels)
        code = labels.get("response_code", "0")
        e.requests += value
        e.by_code[code] = e.by_code.get(code, 0.0) + value
        if code.startswith("5") or code == "0":
            e.errors += value
        e.mtls = e.mtls or labels.get("connection_security_policy") == "mutual_tls"
        e.protocols.add(labels.get("request_protocol", "http"))
    for label_set, hist in series.histograms.get(REQUEST_DURATION, {}).items():
        labels = dict(label_set)
        if _counts(labels):
            e = edge(labels)
            e.duration_ms_sum += hist.total
            e.duration_count += hist.count
    for metric in (TCP_SENT, TCP_RECEIVED):
        for label_set, value in series.counters.get(metric, {}).items():
            labels = dict(label_set)
            if _counts(labels):
                e = edge(labels)
                e.tcp_bytes += value
                e.protocols.add("tcp")
    return sorted(found.values(), key=lambda e: e.key)
