"""The collector's history of reads: windows, charts, single-flight reads, thinning."""

from __future__ import annotations

import asyncio

import pytest

from ratline.dashboard.collector import CollectorHistory, Read
from ratline.dashboard.selector import Selector
from ratline.observability.edges import Edge

A = ("productpage-v1", "default", "reviews.default.svc.cluster.local", "reviews-v1", "default")
B = ("reviews-v2", "default", "ratings.default.svc.cluster.local", "ratings-v1", "default")


def read(at: float, a: float, b: float) -> Read:
    return Read(at, {A: Edge(A, a, {"200": a}), B: Edge(B, b, {"200": b - b // 4, "500": b // 4})})


def history(*reads: Read) -> CollectorHistory:
    async def never() -> list[Edge]:
        raise AssertionError("not read in this test")

    h = CollectorHistory(never)
    for r in reads:
        h.add(r)
    return h


def test_window_is_the_newest_read_minus_the_one_at_its_start() -> None:
    h = history(read(0, 0, 0), read(30, 60, 40), read(60, 120, 80), read(90, 240, 80))
    traffic, covered = h.window(60)
    assert covered == 60
    assert traffic[A].rps == pytest.approx((240 - 60) / 60)
    assert traffic[B].rps == pytest.approx((80 - 40) / 60)
    assert traffic[B].error_rate == pytest.approx(0.25)
    # Only the last 30 s: B was idle, so it is not an edge of that window.
    traffic, covered = h.window(30)
    assert covered == 30 and set(traffic) == {A}


def test_a_window_longer_than_the_reads_covers_what_they_have() -> None:
    traffic, covered = history(read(100, 10, 0), read(110, 30, 0)).window(600)
    assert covered == 10 and traffic[A].rps == pytest.approx(2.0)
    one, none = history(read(100, 10, 4)).window(60)
    assert none is None and one[A].since_start


def test_series_sums_the_selected_edges_between_consecutive_reads() -> None:
    h = history(read(0, 0, 0), read(10, 10, 20), read(20, 30, 20))
    points = h.series(Selector.service_inbound(A[2]), 60)
    assert [(t, p.rps) for t, p in points] == [(10, 1.0), (20, 2.0)]
    outbound = h.series(Selector.workload_outbound("default", "reviews-v2"), 60)
    assert [p.rps for _, p in outbound] == [2.0, 0.0]


def test_thinning_keeps_recent_reads_and_halves_the_old_ones() -> None:
    h = history()
    h.max_reads = 8
    for i in range(9):
        h.add(read(i, i, i))
    assert [r.at for r in h.reads] == [0, 2, 4, 5, 6, 7, 8]


async def test_reads_are_single_flight_and_a_fresh_one_is_reused() -> None:
    calls = 0
    gate = asyncio.Event()

    async def slow_read() -> list[Edge]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return [Edge(A, 1.0, {"200": 1.0})]

    h = CollectorHistory(slow_read, fresh_s=60)
    first = [asyncio.create_task(h.refresh()) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    reads = await asyncio.gather(*first)
    assert calls == 1 and all(r is reads[0] for r in reads)
    assert await h.refresh() is reads[0]
