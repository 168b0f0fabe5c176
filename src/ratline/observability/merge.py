"""A proxy's metrics as Istio serves them: Envoy's stats with `istio_*` series rewritten.

Envoy exposes the counters its stats access logger keeps as `envoy_istio_*` with raw
tags; `IstioSeries` reads them, turns each raw tag set into Istio's labels
(`ratline.observability.labels`), sums the series that end up with equal labels, and
renders `istio_*` families. Every other Envoy stat passes through unchanged, as on an
Istio pod's merged metrics port (15020).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ratline.observability.istio_metrics import (
    ALL_METRICS,
    ENVOY_PREFIX,
    HELP,
    HTTP_HISTOGRAMS,
    TCP_COUNTERS,
)
from ratline.observability.labels import Identity, Labels, istio_labels
from ratline.observability.prometheus_text import (
    family_header,
    format_value,
    parse_line,
    sample_line,
)

_ENVOY_ISTIO = ENVOY_PREFIX + "istio_"
_HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def _family(name: str) -> tuple[str, str]:
    """(Istio family, suffix) of an Envoy sample name without its `envoy_` prefix."""
    for suffix in _HIST_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in HTTP_HISTOGRAMS:
            return name[: -len(suffix)], suffix
    return name, ""


def _le_key(le: str) -> float:
    return float("inf") if le == "+Inf" else float(le)


@dataclass
class Histogram:
    buckets: dict[str, float] = field(default_factory=dict)
    total: float = 0.0
    count: float = 0.0


@dataclass
class IstioSeries:
    """Istio's series of one proxy (or of many, when fed several proxies' stats)."""

    own: Identity = ()
    """The proxy whose stats are read (see `labels.identity`); () when its stats carry it."""
    counters: dict[str, dict[Labels, float]] = field(default_factory=dict)
    histograms: dict[str, dict[Labels, Histogram]] = field(default_factory=dict)

    def add_envoy_line(self, line: str) -> bool:
        """Take one line of Envoy's Prometheus output; False if it is not an Istio series."""
        if not line.startswith(_ENVOY_ISTIO):
            return False
        sample = parse_line(line)
        if sample is None:
            return True
        family, suffix = _family(sample.name[len(ENVOY_PREFIX) :])
        raw = dict(sample.labels)
        le = raw.pop("le", None)
        labels = istio_labels(raw, tcp=family in TCP_COUNTERS, own=self.own)
        if not suffix:
            by_labels = self.counters.setdefault(family, {})
            by_labels[labels] = by_labels.get(labels, 0.0) + sample.value
            return True
        hist = self.histograms.setdefault(family, {}).setdefault(labels, Histogram())
        if suffix == "_bucket" and le is not None:
            hist.buckets[le] = hist.buckets.get(le, 0.0) + sample.value
        elif suffix == "_sum":
            hist.total += sample.value
        elif suffix == "_count":
            hist.count += sample.value
        return True

    def render(self) -> Iterator[str]:
        for family in ALL_METRICS:
            if family in self.counters:
                yield from family_header(family, "counter", HELP[family])
                for labels, value in sorted(self.counters[family].items()):
                    yield sample_line(family, labels, value)
            elif family in self.histograms:
                yield from family_header(family, "histogram", HELP[family])
                for labels, hist in sorted(self.histograms[family].items(), key=lambda i: i[0]):
                    for le in sorted(hist.buckets, key=_le_key):
                        yield sample_line(
                            f"{family}_bucket", (*labels, ("le", le)), hist.buckets[le]
                        )
                    yield sample_line(f"{family}_sum", labels, hist.total)
                    yield sample_line(f"{family}_count", labels, hist.count)


def merged_metrics(envoy_text: str, own: Identity = (), *, keep_envoy: bool = True) -> str:
    """A proxy's metrics page: Istio's series first, then Envoy's other stats."""
    series = IstioSeries(own)
    passthrough: list[str] = []
    for line in envoy_text.splitlines():
        if line.startswith("# ") and _ENVOY_ISTIO in line[:40]:
            continue
        if not series.add_envoy_line(line) and keep_envoy:
            passthrough.append(line)
    return "\n".join([*series.render(), *passthrough]) + "\n"


def istio_series(envoy_texts: Iterable[tuple[str, Identity]]) -> IstioSeries:
    """Istio's series summed over several proxies' Envoy stats (each with its identity)."""
    series = IstioSeries()
    for text, own in envoy_texts:
        series.own = own
        for line in text.splitlines():
            series.add_envoy_line(line)
    return series


__all__ = ["Histogram", "IstioSeries", "format_value", "istio_series", "merged_metrics"]
