"""The span store, OTLP decoding, and the control plane's metric families (pure)."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from ratline.observability.metrics import Counter, Histogram, Registry, process_samples
from ratline.observability.otlp import spans_of
from ratline.observability.prometheus_config import prometheus_config
from ratline.observability.prometheus_text import parse
from ratline.observability.spans import Span, SpanStore


def span(trace: str, sid: str, parent: str, service: str, start: int, end: int) -> Span:
    return Span(trace, sid, parent, "op", service, "SERVER", start, end)


def test_store_groups_by_trace_filters_and_evicts_oldest() -> None:
    store = SpanStore(max_spans=4)
    store.add([span("t1", "a", "", "gw", 0, 10_000_000), span("t1", "b", "a", "reviews.default",
                                                              1, 5_000_000)])
    store.add([span("t2", "c", "", "gw", 0, 1_000_000)])
    assert [t.trace_id for t in store.traces()] == ["t2", "t1"]
    assert [t.trace_id for t in store.traces(service="reviews")] == ["t1"]
    assert [t.trace_id for t in store.traces(min_duration_ms=5)] == ["t1"]
    trace = store.trace("t1")
    assert trace is not None and trace.root.span_id == "a" and trace.duration_ms == 10
    store.add([span("t3", "d", "", "gw", 0, 1), span("t3", "e", "d", "gw", 0, 1)])
    assert store.trace("t1") is None and len(store) == 3


def test_otlp_request_decodes_to_spans() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    attr = rs.resource.attributes.add(key="service.name")
    attr.value.string_value = "reviews.default"
    group = rs.instrumentation_library_spans.add()
    s = group.spans.add(trace_id=bytes(range(16)), span_id=bytes(8), name="ingress",
                        start_time_unix_nano=5, end_time_unix_nano=9)
    s.kind = s.SPAN_KIND_SERVER
    decoded = list(spans_of(trace_service_pb2.ExportTraceServiceRequest.FromString(
        request.SerializeToString())))
    assert [(d.service, d.kind, d.trace_id[:4], d.end_ns - d.start_ns) for d in decoded] == [
        ("reviews.default", "SERVER", "0001", 4)
    ]


def test_histogram_and_counter_render_prometheus_text() -> None:
    registry = Registry()
    pushes = registry.add(Counter("pilot_xds_pushes", "x"))
    pushes.inc((("type", "cds"),))
    pushes.inc((("type", "cds"),))
    hist = registry.add(Histogram("pilot_proxy_convergence_time", "y", buckets=(0.1, 1)))
    for v in (0.05, 0.5, 5):
        hist.observe(v)
    samples = {(s.name, s.labels): s.value for s in parse(registry.render())}
    assert samples[("pilot_xds_pushes", (("type", "cds"),))] == 2
    assert samples[("pilot_proxy_convergence_time_bucket", (("le", "0.1"),))] == 1
    assert samples[("pilot_proxy_convergence_time_bucket", (("le", "1"),))] == 2
    assert samples[("pilot_proxy_convergence_time_bucket", (("le", "+Inf"),))] == 3
    assert samples[("pilot_proxy_convergence_time_count", ())] == 3
    names = {name for name, *_ in process_samples()}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names


def test_prometheus_config_uses_http_sd_with_the_credential_file() -> None:
    config = prometheus_config("http://127.0.0.1:9", "/m/.ratline/admin-token")
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {"istiod", "envoy-stats"}
    sd = jobs["envoy-stats"]["http_sd_configs"][0]
    assert sd["url"] == "http://127.0.0.1:9/v1/prometheus/sd?job=envoy-stats"
    assert sd["authorization"]["credentials_file"] == "/m/.ratline/admin-token"
    assert "authorization" not in jobs["envoy-stats"]
