"""Rates without Prometheus: reads of every proxy's counters, kept for a while.

Each read is the service graph's edges with their totals (`/v1/telemetry/edges`'s data);
the traffic over a window is the newest read minus the read at or before the window's
start, and a chart is the difference between consecutive reads. While the dashboard is
looked at (a request in the last `IDLE_AFTER_S`), a background task reads every
`interval_s`; reads are single-flight and one younger than `fresh_s` is reused, so many
open pages cost one read. At most `max_reads` are kept: past that, every other read of
the older half is dropped (recent history stays fine-grained, the long one thins out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ratline.dashboard.selector import Selector
from ratline.dashboard.traffic import Traffic, deltas, total
from ratline.observability.edges import Edge, EdgeKey

log = logging.getLogger("ratline.dashboard")

IDLE_AFTER_S = 600.0


@dataclass(frozen=True)
class Read:
    at: float
    """Wall-clock time of the read (epoch seconds)."""
    edges: Mapping[EdgeKey, Edge]


class CollectorHistory:
    def __init__(
        self,
        read: Callable[[], Awaitable[list[Edge]]],
        *,
        interval_s: float = 5.0,
        fresh_s: float = 1.0,
        max_reads: int = 240,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._read = read
        self.interval_s = interval_s
        self.fresh_s = fresh_s
        self.max_reads = max_reads
        self._clock = clock
        self.reads: list[Read] = []
        self._lock = asyncio.Lock()
        self._last_used = 0.0
        self._task: asyncio.Task[None] | None = None

    # ---- reading -----------------------------------------------------------------------

    async def refresh(self) -> Read:
        """The newest read, made now unless one younger than `fresh_s` exists."""
        async with self._lock:
            if self.reads and self._clock() - self.reads[-1].at < self.fresh_s:
                return self.reads[-1]
            found = await self._read()
            read = Read(self._clock(), {e.key: e for e in found})
            self.add(read)
            return read

    def add(self, read: Read) -> None:
        self.reads.append(read)
        if len(self.reads) > self.max_reads:
            half = len(self.reads) // 2
            self.reads = self.reads[:half:2] + self.reads[half:]

    # ---- keeping warm while looked at ---------------------------------------------------

    def touch(self) -> None:
        """Someone is looking: keep reading in the background for a while."""
        self._last_used = self._clock()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._keep_warm(), name="dashboard collector")

    async def _keep_warm(self) -> None:
        while self._clock() - self._last_used < IDLE_AFTER_S:
            try:
                await self.refresh()
            except Exception:  # a failing read must not end the loop; the next may work
                log.exception("dashboard: reading the proxies' counters failed")
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ---- what the pages show -----------------------------------------------------------

    def _at_or_before(self, when: float) -> Read | None:
        found = None
        for read in self.reads:
            if read.at <= when:
                found = read
            else:
                break
        return found

    def window(self, window_s: float) -> tuple[dict[EdgeKey, Traffic], float | None]:
        """Every edge's traffic over the last `window_s` (or over what the reads cover,
        when they began later), and the seconds it covers; None: only one read so far,
        the traffic holds totals since the proxies started."""
        if not self.reads:
            return {}, None
        newest = self.reads[-1]
        older = self._at_or_before(newest.at - window_s) or self.reads[0]
        if older is newest:
            return deltas(newest.edges, None, None), None
        seconds = newest.at - older.at
        return deltas(newest.edges, older.edges, seconds), seconds

    def series(self, selector: Selector, range_s: float) -> list[tuple[float, Traffic]]:
        """The selected edges' summed traffic between consecutive reads of the last
        `range_s`, at the time of the later read of each pair."""
        if not self.reads:
            return []
        start = self.reads[-1].at - range_s
        points = []
        for older, newer in zip(self.reads, self.reads[1:], strict=False):
            if newer.at < start:
                continue
            seconds = newer.at - older.at
            if seconds <= 0:
                continue
            chosen = {k: e for k, e in newer.edges.items() if selector.matches(k)}
            points.append((newer.at, total(deltas(chosen, older.edges, seconds).values())))
        return points
