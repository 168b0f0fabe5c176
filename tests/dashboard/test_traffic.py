"""Rates and percentiles of an edge's traffic (pure): Prometheus' histogram_quantile,
differences of two reads, counters that restart."""

from __future__ import annotations

import math

import pytest

from ratline.dashboard.traffic import Traffic, delta, deltas, histogram_quantile
from ratline.observability.edges import Edge

KEY = ("productpage-v1", "default", "reviews.default.svc.cluster.local", "reviews-v1", "default")
INF = math.inf


def test_quantile_interpolates_inside_the_bucket_as_prometheus() -> None:
    # 100 requests: 50 under 10 ms, 90 under 25 ms, all under 50 ms.
    buckets = {5.0: 0.0, 10.0: 50.0, 25.0: 90.0, 50.0: 100.0, INF: 100.0}
    assert histogram_quantile(0.5, buckets) == 10.0
    assert histogram_quantile(0.9, buckets) == 25.0
    assert histogram_quantile(0.99, buckets) == pytest.approx(25 + 25 * 9 / 10)
    assert histogram_quantile(0.25, buckets) == pytest.approx(5 + 5 * 25 / 50)


def test_quantile_in_the_inf_bucket_is_the_last_finite_bound_and_empty_is_none() -> None:
    assert histogram_quantile(0.99, {10.0: 50.0, INF: 100.0}) == 10.0
    assert histogram_quantile(0.5, {10.0: 0.0, INF: 0.0}) is None
    assert histogram_quantile(0.5, {10.0: 3.0}) is None  # no +Inf: not a histogram


def edge(requests: dict[str, float], buckets: dict[str, float], tcp: float = 0.0) -> Edge:
    return Edge(KEY, requests=sum(requests.values()), by_code=dict(requests),
                duration_buckets=dict(buckets), tcp_bytes=tcp, mtls=True, protocols={"http"})


def test_delta_of_two_reads_gives_rates_error_rate_and_percentiles() -> None:
    older = edge({"200": 100.0}, {"10": 100.0, "+Inf": 100.0})
    newer = edge({"200": 190.0, "503": 10.0}, {"10": 150.0, "25": 200.0, "+Inf": 200.0})
    older.duration_buckets["25"] = 100.0
    t = delta(newer, older, 10.0)
    assert t.rps == pytest.approx(10.0)
    assert t.by_code == {"200": pytest.approx(9.0), "503": pytest.approx(1.0)}
    assert t.error_rate == pytest.approx(0.1)
    assert t.quantile(0.5) == 10.0  # 50 of 100 new requests under 10 ms
    data = t.to_json()
    assert data["rps"] == 10.0 and data["error_rate"] == 0.1 and data["mtls"] is True


def test_a_counter_that_went_down_counts_from_zero_as_prometheus_rate() -> None:
    older = edge({"200": 500.0}, {"+Inf": 500.0})
    restarted = edge({"200": 20.0}, {"+Inf": 20.0})
    assert delta(restarted, older, 10.0).rps == pytest.approx(2.0)


def test_without_an_older_read_the_totals_are_kept_and_rates_are_unknown() -> None:
    t = delta(edge({"200": 30.0, "500": 10.0}, {"+Inf": 40.0}), None, None)
    data = t.to_json()
    assert t.since_start and data["rps"] is None and data["requests_since_start"] == 40.0
    assert data["error_rate"] == 0.25


def test_deltas_keep_only_edges_where_something_flowed() -> None:
    idle = edge({"200": 5.0}, {"+Inf": 5.0})
    assert deltas({KEY: idle}, {KEY: idle}, 5.0) == {}
    assert set(deltas({KEY: idle}, {}, 5.0)) == {KEY}


def test_error_rate_counts_5xx_and_no_response() -> None:
    t = Traffic(by_code={"200": 6.0, "404": 1.0, "503": 2.0, "0": 1.0})
    assert t.error_rate == pytest.approx(0.3)
    assert Traffic().error_rate is None
