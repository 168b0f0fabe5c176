"""Metric families for Ratline's own processes: counters, gauges, histograms (pure).

A small registry that renders the Prometheus text format; histograms default to
Istio's buckets in seconds where Istio's pilot metrics use seconds.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from ratline.observability.prometheus_text import family_header, format_value, sample_line

Labels = tuple[tuple[str, str], ...]

PILOT_SECONDS_BUCKETS = (0.01, 0.1, 0.5, 1, 3, 5, 10, 20, 30)
"""Istio's buckets for pilot_proxy_convergence_time, pilot_xds_push_time and
pilot_proxy_queue_time (seconds)."""


@dataclass
class Counter:
    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> Iterator[str]:
        yield from family_header(self.name, "counter", self.help)
        for labels, value in sorted(self.values.items()):
            yield sample_line(self.name, labels, value)


@dataclass
class Gauge:
    """A gauge whose samples are computed when rendered (`collect`)."""

    name: str
    help: str
    collect: Callable[[], Iterable[tuple[Labels, float]]]

    def render(self) -> Iterator[str]:
        yield from family_header(self.name, "gauge", self.help)
        for labels, value in sorted(self.collect()):
            yield sample_line(self.name, labels, value)


@dataclass
class _HistogramSeries:
    counts: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...] = PILOT_SECONDS_BUCKETS
    series: dict[Labels, _HistogramSeries] = field(default_factory=dict)

    def observe(self, value: float, labels: Labels = ()) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = _HistogramSeries([0] * len(self.buckets))
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            s.counts[index] += 1
        s.total += value
        s.count += 1

    def render(self) -> Iterator[str]:
        yield from family_header(self.name, "histogram", self.help)
        for labels, s in sorted(self.series.items(), key=lambda i: i[0]):
            running = 0
            for bound, n in zip(self.buckets, s.counts, strict=True):
                running += n
                yield sample_line(
                    f"{self.name}_bucket", (*labels, ("le", format_value(bound))), running
                )
            yield sample_line(f"{self.name}_bucket", (*labels, ("le", "+Inf")), s.count)
            yield sample_line(f"{self.name}_sum", labels, s.total)
            yield sample_line(f"{self.name}_count", labels, s.count)


Family = Counter | Gauge | Histogram
F = TypeVar("F", Counter, Gauge, Histogram)


@dataclass
class Registry:
    families: list[Family] = field(default_factory=list)

    def add(self, family: F) -> F:
        self.families.append(family)
        return family

    def render(self) -> str:
        lines: list[str] = []
        for family in self.families:
            lines.extend(family.render())
        return "\n".join(lines) + "\n"


def _clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError):
        return 100


def process_samples(proc: str = "/proc/self") -> list[tuple[str, str, str, float]]:
    """(name, type, help, value) of the standard process_* metrics of this process."""
    samples: list[tuple[str, str, str, float]] = []
    try:
        with open(f"{proc}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = _clock_ticks()
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        with open("/proc/stat") as f:
            boot = next(float(line.split()[1]) for line in f if line.startswith("btime"))
        start = boot + int(fields[19]) / ticks
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        vsize = float(fields[20])
        samples += [
            ("process_cpu_seconds_total", "counter", "User and system CPU time in seconds.", cpu),
            ("process_start_time_seconds", "gauge", "Start time since the epoch.", start),
            ("process_resident_memory_bytes", "gauge", "Resident memory in bytes.", float(rss)),
            ("process_virtual_memory_bytes", "gauge", "Virtual memory in bytes.", vsize),
        ]
    except (OSError, ValueError, IndexError, StopIteration):
        pass
    with contextlib.suppress(OSError):
        samples.append(
            (
                "process_open_fds",
                "gauge",
                "Open file descriptors.",
                float(len(os.listdir(f"{proc}/fd"))),
            )
        )
    return samples


def render_process_metrics() -> str:
    lines: list[str] = []
    for name, kind, help_text, value in process_samples():
        lines.extend(family_header(name, kind, help_text))
        lines.append(sample_line(name, (), value))
    return "\n".join(lines) + "\n"
