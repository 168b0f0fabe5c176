"""The embedded span store: the recent spans the proxies sent, grouped into traces (pure).

Bounded: the oldest spans go first once `max_spans` are kept. Queried by service and by
minimum duration, as `ratline traces` and the admin API's `/v1/traces` do.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MAX_SPANS = 20_000


@dataclass(frozen=True)
class Span:
    trace_id: str
    """32 hex digits."""
    span_id: str
    parent_span_id: str
    """"" for a root span."""
    name: str
    service: str
    kind: str
    """SERVER, CLIENT, ... (OTLP's span kinds without the prefix)."""
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    def to_json(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "service": self.service,
            "kind": self.kind,
            "start_unix_nano": self.start_ns,
            "end_unix_nano": self.end_ns,
            "duration_ms": round(self.duration_ms, 3),
            "status": self.status,
            "attributes": dict(self.attributes),
        }


@dataclass
class Trace:
    trace_id: str
    spans: list[Span] = field(default_factory=list)

    @property
    def start_ns(self) -> int:
        return min(s.start_ns for s in self.spans)

    @property
    def duration_ms(self) -> float:
        return (max(s.end_ns for s in self.spans) - self.start_ns) / 1e6

    @property
    def root(self) -> Span:
        """The span without a parent among the trace's spans (the earliest if several)."""
        ids = {s.span_id for s in self.spans}
        roots = [s for s in self.spans if not s.parent_span_id or s.parent_span_id not in ids]
        return min(roots or self.spans, key=lambda s: s.start_ns)

    @property
    def services(self) -> list[str]:
        return sorted({s.service for s in self.spans})

    def summary(self) -> dict[str, Any]:
        root = self.root
        return {
            "trace_id": self.trace_id,
            "root_service": root.service,
            "root_name": root.name,
            "start_unix_nano": self.start_ns,
            "duration_ms": round(self.duration_ms, 3),
            "span_count": len(self.spans),
            "services": self.services,
            "errors": sum(1 for s in self.spans if s.status == "ERROR"),
        }

    def to_json(self) -> dict[str, Any]:
        data = self.summary()
        data["spans"] = [s.to_json() for s in sorted(self.spans, key=lambda s: s.start_ns)]
        return data


class SpanStore:
    """The most recent spans, by trace."""

    def __init__(self, max_spans: int = DEFAULT_MAX_SPANS) -> None:
        self.max_spans = max_spans
        self._traces: OrderedDict[str, Trace] = OrderedDict()
        self._count = 0
        self.received = 0

    def __len__(self) -> int:
        return self._count

    def add(self, spans: Iterable[Span]) -> None:
        for span in spans:
            self.received += 1
            trace = self._traces.get(span.trace_id)
            if trace is None:
                trace = self._traces[span.trace_id] = Trace(span.trace_id)
            else:
                self._traces.move_to_end(span.trace_id)
            trace.spans.append(span)
            self._count += 1
        while self._count > self.max_spans and self._traces:
            _, oldest = self._traces.popitem(last=False)
            self._count -= len(oldest.spans)

    def trace(self, trace_id: str) -> Trace | None:
        return self._traces.get(trace_id.lower())

    def traces(
        self,
        *,
        service: str | None = None,
        min_duration_ms: float | None = None,
        limit: int = 20,
    ) -> list[Trace]:
        """Newest first: traces with a span of `service` (its name, or `name.namespace`)
        lasting at least `min_duration_ms` overall."""
        found: list[Trace] = []
        for trace in reversed(self._traces.values()):
            if service and not any(_service_matches(s.service, service) for s in trace.spans):
                continue
            if min_duration_ms is not None and trace.duration_ms < min_duration_ms:
                continue
            found.append(trace)
            if len(found) >= limit:
                break
        return found

    def services(self) -> list[str]:
        return sorted({s.service for t in self._traces.values() for s in t.spans})


def _service_matches(span_service: str, wanted: str) -> bool:
    return span_service == wanted or span_service.split(".", 1)[0] == wanted
