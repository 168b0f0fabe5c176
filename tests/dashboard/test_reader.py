"""Choosing the source: Prometheus when it answers, else the collector with a note saying
why; query parameters out of range are refused with their name."""

from __future__ import annotations

import socket

import pytest

from ratline.dashboard.collector import CollectorHistory
from ratline.dashboard.prometheus import PrometheusError
from ratline.dashboard.reader import BadQuery, TrafficReader, parse_seconds, parse_source
from ratline.dashboard.selector import Selector
from ratline.observability.edges import Edge

KEY = ("a", "default", "b.default.svc.cluster.local", "b-v1", "default")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def edges() -> list[Edge]:
    return [Edge(KEY, 5.0, {"200": 5.0})]


async def test_an_unreachable_prometheus_falls_back_to_the_collector_and_says_so() -> None:
    reader = TrafficReader(CollectorHistory(edges), f"http://127.0.0.1:{closed_port()}", 1.0)
    try:
        answer = await reader.window(60)
        assert answer.source == "collector" and "Prometheus at" in answer.note
        assert set(answer.traffic) == {KEY} and answer.window_s is None  # one read so far
        with pytest.raises(PrometheusError):
            await reader.window(60, "prometheus")
        chart = await reader.chart(Selector.service_inbound(KEY[2]), 60)
        assert chart["source"] == "collector" and "Prometheus at" in chart["note"]
    finally:
        await reader.close()


async def test_without_prometheus_configured_prometheus_cannot_be_forced() -> None:
    reader = TrafficReader(CollectorHistory(edges), "", 15.0)
    try:
        assert (await reader.window(60)).note == ""
        with pytest.raises(PrometheusError, match="no Prometheus"):
            await reader.window(60, "prometheus")
    finally:
        await reader.close()


def test_windows_and_sources_are_checked() -> None:
    assert parse_seconds("5m", 60, "window") == 300
    assert parse_seconds(None, 60, "window") == 60
    assert parse_seconds("90", 60, "window") == 90
    for bad in ("1s", "7h", "soon"):
        with pytest.raises(BadQuery, match="window"):
            parse_seconds(bad, 60, "window")
    assert parse_source(None) == "auto"
    with pytest.raises(BadQuery, match="source"):
        parse_source("jaeger")
