"""Which edges a chart sums: a service's inbound, a workload's inbound or outbound (pure).

One `Selector` serves both data sources: `matches(key)` filters the collector's edges,
`promql()` is the same filter as Prometheus label matchers.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratline.observability.edges import EdgeKey

_FIELDS = (
    ("source_workload", 0),
    ("source_workload_namespace", 1),
    ("destination_service", 2),
    ("destination_workload", 3),
    ("destination_workload_namespace", 4),
)


@dataclass(frozen=True)
class Selector:
    source_workload: str | None = None
    source_workload_namespace: str | None = None
    destination_service: str | None = None
    destination_workload: str | None = None
    destination_workload_namespace: str | None = None

    @classmethod
    def service_inbound(cls, hostname: str) -> Selector:
        return cls(destination_service=hostname)

    @classmethod
    def workload_inbound(cls, namespace: str, workload: str) -> Selector:
        return cls(destination_workload=workload, destination_workload_namespace=namespace)

    @classmethod
    def workload_outbound(cls, namespace: str, workload: str) -> Selector:
        return cls(source_workload=workload, source_workload_namespace=namespace)

    def matches(self, key: EdgeKey) -> bool:
        for name, index in _FIELDS:
            wanted = getattr(self, name)
            if wanted is not None and key[index] != wanted:
                return False
        return True

    def promql(self) -> str:
        """Label matchers, `destination_service="reviews.default.svc.cluster.local"`."""
        parts = []
        for name, _ in _FIELDS:
            wanted = getattr(self, name)
            if wanted is not None:
                escaped = wanted.replace("\\", "\\\\").replace('"', '\\"')
                parts.append(f'{name}="{escaped}"')
        return ",".join(parts)
