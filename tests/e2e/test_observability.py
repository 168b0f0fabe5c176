"""Observability end to end on Bookinfo: Istio's metrics in a real Prometheus started from
`ratline prometheus-config`, access logs switched by the Telemetry API, traces in the
embedded store and in a real Jaeger.

Follows Istio's tasks "Querying Metrics from Prometheus", "Envoy Access Logs" and
"Distributed Tracing" (docs/observability.md). Counts are compared exactly, as deltas
from before the traffic each test sends; every test undoes the config it applies.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mesh, mesh_env, wait_status
from tests.e2e.telemetry_tools import Jaeger, Prometheus, running_jaeger, running_prometheus
from tests.helpers import free_fixed_port, http_get, pid_alive, wait_for
from tests.tools import tool

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
BOOKINFO = REPO / "examples" / "bookinfo"
REVIEWS_ATTEMPTS = 2
"""examples/bookinfo/apps/productpage.py: reviews is tried twice before the page says so."""
VERSION = re.compile(r'class="reviews" data-version="(v\d)"')
MESH_YAML = """\
defaultConfig:
  tracing:
    sampling: 100
extensionProviders:
- name: jaeger
  opentelemetry:
    service: 127.0.0.1
    port: {otlp}
- name: jaeger-zipkin
  zipkin:
    service: 127.0.0.1
    port: {zipkin}
"""
REVIEWS_V2 = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
"""


@pytest.fixture(scope="module")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    with running_jaeger(tmp_path_factory.mktemp("jaeger")) as j:
        yield j


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory, jaeger: Jaeger) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("observability")
    mesh_dir = root / "mesh"
    shutil.copytree(BOOKINFO, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
    (mesh_dir / "mesh.yaml").write_text(
        MESH_YAML.format(otlp=jaeger.otlp_port, zipkin=jaeger.zipkin_port)
    )
    env = mesh_env(free_fixed_port(), RATLINE_PROMETHEUS=tool("prometheus"),
                   RATLINE_PROMETHEUS_PORT="0", RATLINE_PROMETHEUS_SCRAPE_INTERVAL="1s")
    mesh = Mesh(mesh_dir, env)
    try:
        mesh.up()
        wait_status(mesh, mesh.gateway_url("/productpage"), timeout=30)
        yield mesh
    finally:
        mesh.down()


@pytest.fixture(scope="module")
def prom(bookinfo: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    config = bookinfo.ratline(
        "prometheus-config", "--scrape-interval", "1s", "--sd-refresh", "1s",
        "--mesh", str(bookinfo.dir),
    ).stdout
    with running_prometheus(config, tmp_path_factory.mktemp("prometheus")) as p:
        wait_for(lambda: len(p.targets("envoy-stats")) == 7, timeout=30, interval=0.2,
                 what="7 proxies discovered")
        yield p


def productpage(mesh: Mesh, n: int, headers: dict[str, str] | None = None) -> list[float]:
    """n pages through the gateway; each one's latency in ms as the client saw it."""
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        status, body = mesh.get(mesh.gateway_url("/productpage"), headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert status == 200, body[:300]
    return latencies


def apply(mesh: Mesh, text: str) -> None:
    result = mesh.apply(text)
    assert result.returncode == 0, result.stderr


def delete(mesh: Mesh, text: str) -> None:
    path = mesh.dir.parent / "deleted.yaml"
    path.write_text(text)
    mesh.ratline("delete", "-f", str(path), "--mesh", str(mesh.dir))


def baseline(prom: Prometheus, *queries: str) -> dict[str, float]:
    """The queries' values once every proxy was scraped after the traffic sent so far."""
    prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
    return {q: prom.value(q) for q in queries}


def settle(prom: Prometheus, query: str, want: float, timeout: float = 30) -> None:
    """Wait until `query` reads `want`, then check it still does after a fresh scrape of
    every proxy (nothing more arrives late: the count is exact)."""
    wait_for(lambda: prom.value(query) == want, timeout=timeout, interval=0.2,
             what=f"{query} == {want}")
    prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
    assert prom.value(query) == want, query


@pytest.fixture
def reviews_v2(bookinfo: Mesh) -> Iterator[None]:
    apply(bookinfo, REVIEWS_V2)

    def all_v2() -> bool:
        pages = [VERSION.search(bookinfo.get(bookinfo.gateway_url("/productpage"))[1])
                 for _ in range(8)]
        return all(p is not None and p.group(1) == "v2" for p in pages)

    wait_for(all_v2, timeout=30, interval=0.1, what="every page from reviews v2")
    yield
    delete(bookinfo, REVIEWS_V2)


TO_V2 = 'destination_version="v2",destination_service="reviews.default.svc.cluster.local",' \
        'source_workload="productpage-v1",response_code="200"'


def test_requests_counted_exactly_per_reporter(bookinfo: Mesh, prom: Prometheus,
                                               reviews_v2: None) -> None:
    queries = {r: f'sum(istio_requests_total{{reporter="{r}",{TO_V2}}})'
               for r in ("source", "destination")}
    values = baseline(prom, *queries.values())
    before = {r: values[q] for r, q in queries.items()}
    productpage(bookinfo, 100)
    for reporter, query in queries.items():
        settle(prom, query, before[reporter] + 100)
    labels = prom.series(f'istio_requests_total{{reporter="destination",{TO_V2}}}')[0]["metric"]
    assert labels["destination_workload"] == "reviews-v2"
    assert labels["destination_workload_namespace"] == "default"
    assert labels["source_principal"] == "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    assert labels["destination_principal"] == "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
    assert labels["connection_security_policy"] == "mutual_tls"
    assert labels["source_app"] == "productpage" and labels["source_version"] == "v1"
    assert labels["destination_canonical_service"] == "reviews"
    assert labels["destination_canonical_revision"] == "v2"
    assert labels["request_protocol"] == "http" and labels["response_flags"] == "-"
    assert labels["source_cluster"] == labels["destination_cluster"] == "Kubernetes"
    assert labels["pod"] == "reviews-v2-0" and labels["job"] == "envoy-stats"
    source = prom.series(f'istio_requests_total{{reporter="source",{TO_V2}}}')[0]["metric"]
    assert source["pod"] == "productpage-v1-0"
    assert source["connection_security_policy"] == "unknown"


def test_histograms_agree_with_the_requests_latency(bookinfo: Mesh, prom: Prometheus,
                                                    reviews_v2: None) -> None:
    selector = f'reporter="destination",{TO_V2}'
    count_q = f"sum(istio_request_duration_milliseconds_count{{{selector}}})"
    sum_q = f"sum(istio_request_duration_milliseconds_sum{{{selector}}})"
    inf_q = f'sum(istio_request_duration_milliseconds_bucket{{{selector},le="+Inf"}})'
    total_q = f"sum(istio_requests_total{{{selector}}})"
    # Envoy flushes histograms every 5 s: the baseline is taken once they caught up.
    def flushed() -> bool:
        values = baseline(prom, count_q, total_q)
        return values[count_q] == values[total_q]

    wait_for(flushed, timeout=40, interval=0.5, what="histograms flushed")
    before = baseline(prom, count_q, sum_q, inf_q)
    latencies = productpage(bookinfo, 40)
    settle(prom, count_q, before[count_q] + 40, timeout=40)
    assert prom.value(inf_q) - before[inf_q] == 40
    assert prom.value(count_q) == prom.value(total_q)
    spent = prom.value(sum_q) - before[sum_q]
    # Each reviews call happens inside one page load the client timed; Envoy counts
    # whole milliseconds (truncated), so the sum is at most the pages' total.
    assert 0 <= spent <= sum(latencies), (spent, sum(latencies))
    buckets = prom.series(f"sum by (le) (istio_request_duration_milliseconds_bucket{{{selector}}})")
    by_le = sorted((float(b["metric"]["le"]), float(b["value"][1])) for b in buckets)
    assert [le for le, _ in by_le][:3] == [0.5, 1.0, 5.0]
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(by_le))
    for name in ("istio_request_bytes", "istio_response_bytes"):
        assert prom.value(f"sum({name}_count{{{selector}}})") == prom.value(count_q)


DENY_REVIEWS = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-reviews-obs}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/reviews/*"]}}]
"""


def test_denied_requests_count_as_403(bookinfo: Mesh, prom: Prometheus,
                                      reviews_v2: None) -> None:
    query = ('sum(istio_requests_total{reporter="destination",destination_workload="reviews-v2",'
             'response_code="403"})')
    source_q = query.replace('reporter="destination"', 'reporter="source"')
    apply(bookinfo, DENY_REVIEWS)
    try:
        def denied() -> bool:
            body = bookinfo.get(bookinfo.gateway_url("/productpage"))[1]
            return VERSION.search(body) is None

        wait_for(denied, timeout=30, interval=0.1, what="reviews denied")
        values = baseline(prom, query, source_q)
        before, source_before = values[query], values[source_q]
        productpage(bookinfo, 20)
        # productpage tries reviews twice before it shows the error (as Istio's does)
        settle(prom, query, before + 20 * REVIEWS_ATTEMPTS)
        settle(prom, source_q, source_before + 20 * REVIEWS_ATTEMPTS)
    finally:
        delete(bookinfo, DENY_REVIEWS)


RATINGS_TWO = """\
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: ratings-v1
  labels: {app: ratings, version: v1}
spec:
  serviceAccount: bookinfo-ratings
  replicas: 2
  command: [python3, apps/ratings.py]
  ports:
  - name: http
    containerPort: 9080
"""


def test_http_sd_targets_follow_instances(bookinfo: Mesh, prom: Prometheus) -> None:
    original = next(d for d in (BOOKINFO / "bookinfo.yaml").read_text().split("\n---\n")
                    if "kind: Workload" in d and "name: ratings-v1" in d)
    apply(bookinfo, RATINGS_TWO)

    def pods() -> set[str]:
        return {t["labels"]["pod"] for t in prom.targets("envoy-stats")
                if t["labels"].get("app") == "ratings" and t["health"] == "up"}

    try:
        wait_for(lambda: pods() == {"ratings-v1-0", "ratings-v1-1"}, timeout=60, interval=0.2,
                 what="a second ratings target")
        target = next(t for t in prom.targets("envoy-stats")
                      if t["labels"]["pod"] == "ratings-v1-1")
        assert target["labels"]["namespace"] == "default"
        assert target["labels"]["version"] == "v1"
    finally:
        apply(bookinfo, original)
    wait_for(lambda: pods() == {"ratings-v1-0"}, timeout=60, interval=0.2,
             what="the second ratings target gone")


def test_pilot_metrics_move_on_a_config_change(bookinfo: Mesh, prom: Prometheus) -> None:
    wait_for(lambda: prom.value('pilot_xds{job="istiod"}') == 7, timeout=30, interval=0.2,
             what="pilot_xds counts the 7 proxies")
    pushes = 'sum(pilot_xds_pushes{job="istiod",type="rds"})'
    convergence = 'sum(pilot_proxy_convergence_time_count{job="istiod"})'
    prom.wait_scraped_after("istiod", time.time() + 0.1)
    before, before_conv = prom.value(pushes), prom.value(convergence)
    apply(bookinfo, REVIEWS_V2)
    try:
        wait_for(lambda: prom.value(pushes) > before, timeout=30, interval=0.2,
                 what="pilot_xds_pushes moved")
        assert prom.value(convergence) > before_conv
        assert prom.value('process_resident_memory_bytes{job="istiod"}') > 0
    finally:
        delete(bookinfo, REVIEWS_V2)
    refused_q = 'sum(galley_validation_failed{job="istiod"})'
    prom.wait_scraped_after("istiod", time.time() + 0.1)
    refused_before = prom.value(refused_q)
    bad = bookinfo.apply(BAD_TELEMETRY)
    assert bad.returncode != 0
    wait_for(lambda: prom.value(refused_q) == refused_before + 1, timeout=30, interval=0.2,
             what="galley_validation_failed moved")


BAD_TELEMETRY = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: bad}
spec:
  tracing:
  - randomSamplingPercentage: 300
"""

LOG_RATINGS = """\
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ratings-logs}
spec:
  selector: {matchLabels: {app: ratings}}
  accessLogging:
  - providers: [{name: envoy}]
"""


def _log_lines(mesh: Mesh, instance: str) -> list[str]:
    path = mesh.dir / ".ratline" / "logs" / f"{instance}.access.log"
    return path.read_text().splitlines() if path.exists() else []


def test_access_logs_switched_per_workload_by_telemetry(bookinfo: Mesh) -> None:
    assert bookinfo.apply(BAD_TELEMETRY).returncode != 0
    out = bookinfo.apply(BAD_TELEMETRY).stderr + bookinfo.apply(BAD_TELEMETRY).stdout
    assert "randomSamplingPercentage" in out and "Telemetry" in out, out
    before = {i: len(_log_lines(bookinfo, i)) for i in ("ratings-v1-0", "details-v1-0")}
    apply(bookinfo, LOG_RATINGS)
    try:
        def logged() -> bool:
            productpage(bookinfo, 1)
            return len(_log_lines(bookinfo, "ratings-v1-0")) > before["ratings-v1-0"]

        wait_for(logged, timeout=30, interval=0.2, what="ratings access log lines")
        line = _log_lines(bookinfo, "ratings-v1-0")[-1]
        assert '"GET /ratings/0 HTTP/1.1" 200' in line, line
        assert "inbound|9080||" in line, line
        assert len(_log_lines(bookinfo, "details-v1-0")) == before["details-v1-0"]
        # Istio's filter: only what the CEL expression selects.
        apply(bookinfo, LOG_RATINGS.replace(
            "- providers: [{name: envoy}]",
            "- providers: [{name: envoy}]\n    filter: {expression: 'response.code >= 400'}"))
        wait_for(lambda: _quiet_after_traffic(bookinfo), timeout=30, interval=0.2,
                 what="the filter in force")
    finally:
        delete(bookinfo, LOG_RATINGS)


def _quiet_after_traffic(mesh: Mesh) -> bool:
    """True when ten pages (all 200) add no ratings log line."""
    before = len(_log_lines(mesh, "ratings-v1-0"))
    productpage(mesh, 10)
    return len(_log_lines(mesh, "ratings-v1-0")) == before


def _admin_get(mesh: Mesh, path: str) -> Any:
    info = mesh.run_info()
    status, body, _ = http_get(f"http://{info['control_plane']['admin']}{path}",
                               mesh.admin_headers())
    assert status == 200, body[:300]
    return json.loads(body)


WANT_SERVICES = {"istio-ingressgateway.istio-system", "productpage.default", "reviews.default",
                 "ratings.default", "details.default"}


def _one_trace(mesh: Mesh) -> dict[str, Any]:
    """A page's trace from the embedded store, once all its spans arrived."""
    productpage(mesh, 1, {"x-client": "trace-me"})

    def whole() -> dict[str, Any] | None:
        out = mesh.ratline("traces", "--service", "ratings", "-o", "json", "--mesh",
                           str(mesh.dir)).stdout
        for summary in json.loads(out)["traces"]:
            if set(summary["services"]) >= WANT_SERVICES and summary["span_count"] >= 8:
                return _admin_get(mesh, f"/v1/traces/{summary['trace_id']}")
        return None

    return wait_for(whole, timeout=30, interval=0.5, what="a whole trace in the store")


def test_trace_in_the_embedded_store(bookinfo: Mesh, reviews_v2: None) -> None:
    trace = _one_trace(bookinfo)
    spans = trace["spans"]
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if s["parent_span_id"] not in ids]
    assert len(roots) == 1 and roots[0]["service"] == "istio-ingressgateway.istio-system"
    by_id = {s["span_id"]: s for s in spans}
    # every server span of a hop is the child of the client span that called it
    for span in spans:
        if span["kind"] == "SERVER" and span["parent_span_id"] in by_id:
            assert by_id[span["parent_span_id"]]["kind"] == "CLIENT", span
    ratings = [s for s in spans if s["service"] == "ratings.default"]
    assert ratings and ratings[0]["kind"] == "SERVER"
    parent = by_id[ratings[0]["parent_span_id"]]
    assert parent["service"] == "reviews.default"
    out = bookinfo.ratline("traces", "--min-duration", "1h", "--mesh", str(bookinfo.dir)).stdout
    assert trace["trace_id"] not in out
    tree = bookinfo.ratline("traces", trace["trace_id"], "--mesh", str(bookinfo.dir)).stdout
    assert tree.splitlines()[0].startswith("istio-ingressgateway.istio-system CLIENT")


def _telemetry_to(provider: str) -> str:
    return (
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
        "metadata: {name: mesh-default, namespace: istio-system}\n"
        f"spec:\n  tracing:\n  - providers: [{{name: {provider}}}]\n"
    )


def _jaeger_roots(trace: dict[str, Any]) -> list[dict[str, Any]]:
    spans = trace["spans"]
    ids = {s["spanID"] for s in spans}
    return [s for s in spans if not any(r["refType"] == "CHILD_OF" and r["spanID"] in ids
                                        for r in s.get("references", ()))]


@pytest.mark.parametrize("provider", ["jaeger", "jaeger-zipkin"])
def test_trace_arrives_whole_in_jaeger(bookinfo: Mesh, jaeger: Jaeger, provider: str) -> None:
    text = _telemetry_to(provider)
    seen = {t["traceID"] for t in jaeger.traces("ratings.default")}
    apply(bookinfo, text)
    try:
        def whole() -> dict[str, Any] | None:
            # until the switch reached every proxy, a page's spans go partly elsewhere
            productpage(bookinfo, 1)
            for t in jaeger.traces("ratings.default"):
                services = {p["serviceName"] for p in t["processes"].values()}
                if (t["traceID"] not in seen and services >= WANT_SERVICES
                        and len(t["spans"]) >= 8 and len(_jaeger_roots(t)) == 1):
                    return t
            return None

        trace = wait_for(whole, timeout=60, interval=1.0,
                         what=f"a whole trace in Jaeger via {provider}")
    finally:
        delete(bookinfo, text)
    root = _jaeger_roots(trace)[0]
    assert trace["processes"][root["processID"]]["serviceName"] == (
        "istio-ingressgateway.istio-system"
    )
    assert len({s["traceID"] for s in trace["spans"]}) == 1
    # Istio's span names (`HOST:PORT/PATH` of the route) and tags.
    assert root["operationName"] == "productpage.default.svc.cluster.local:9080/productpage"
    names = {s["operationName"] for s in trace["spans"]}
    assert names == {"productpage.default.svc.cluster.local:9080/productpage"} | {
        f"{svc}.default.svc.cluster.local:9080/*" for svc in ("details", "reviews", "ratings")
    }, names
    for span in trace["spans"]:
        service = trace["processes"][span["processID"]]["serviceName"]
        tags = {t["key"]: str(t["value"]) for t in span["tags"]}
        canonical, namespace = service.split(".")
        assert tags["istio.canonical_service"] == canonical, tags
        assert tags["istio.namespace"] == namespace, tags
        assert tags["istio.mesh_id"] == "cluster.local", tags
        assert tags["istio.cluster_id"] == "Kubernetes", tags
        assert tags["istio.canonical_revision"] in ("v1", "v2", "v3", "latest"), tags
        assert tags["node_id"].startswith(("sidecar~", "router~")), tags
        assert tags["node_id"].endswith(f".{namespace}~{namespace}.svc.cluster.local"), tags
        assert tags["response_flags"] == "-" and tags["http.status_code"] == "200", tags
        assert tags["upstream_cluster"], tags


def test_graph_edges_without_prometheus(bookinfo: Mesh) -> None:
    productpage(bookinfo, 3)
    edges = _admin_get(bookinfo, "/v1/telemetry/edges")["edges"]
    pairs = {(e["source"]["workload"], e["destination"]["workload"]) for e in edges}
    assert ("istio-ingressgateway", "productpage-v1") in pairs
    assert ("productpage-v1", "details-v1") in pairs
    gateway_edge = next(e for e in edges if e["destination"]["workload"] == "productpage-v1")
    assert gateway_edge["mtls"] is True and gateway_edge["requests"] >= 3


def test_up_runs_prometheus_as_an_add_on(bookinfo: Mesh) -> None:
    url = bookinfo.ratline("dashboard", "prometheus", "--mesh", str(bookinfo.dir)).stdout.strip()
    addon = Prometheus(url)
    wait_for(lambda: len([t for t in addon.targets("envoy-stats") if t["health"] == "up"]) == 7,
             timeout=60, interval=0.5, what="the add-on scrapes the 7 proxies")
    pid = bookinfo.run_info()["addons"]["prometheus"]["pid"]
    assert pid and pid_alive(pid)
    assert (bookinfo.dir / ".ratline" / "prometheus" / "data").is_dir()


DASHBOARDS = REPO / "addons" / "grafana" / "dashboards"
MUST_SHOW_DATA = {
    "Requests by destination service",
    "P90 latency by destination service",
    "Incoming requests by source and response code",
    "Incoming request volume",
    "Connected proxies",
    "xDS pushes",
}


def test_grafana_dashboards_queries_run_on_this_data(bookinfo: Mesh, prom: Prometheus) -> None:
    productpage(bookinfo, 5)
    prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
    shown = set()
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = re.sub(r"\$\w+", ".*", target["expr"])
                if prom.series(expr):  # a query Prometheus refuses fails here
                    shown.add(panel["title"])
    assert shown >= MUST_SHOW_DATA, MUST_SHOW_DATA - shown


RATINGS_FAULT = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-fault}
spec:
  hosts: [ratings]
  http:
  - fault:
      FAULT
    route:
    - destination: {host: ratings}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: reviews-logs}
spec:
  selector: {matchLabels: {app: reviews}}
  accessLogging:
  - providers: [{name: envoy}]
"""
ABORT = "abort: {httpStatus: 500, percentage: {value: 100}}"
DELAY = "delay: {fixedDelay: 0.05s, percentage: {value: 100}}"
FAULTED = ('sum(istio_requests_total{reporter="source",source_workload="reviews-v2",'
           'destination_service="ratings.default.svc.cluster.local",'
           'response_code="CODE",response_flags="FLAG"}) or vector(0)')


def _fault_logged(mesh: Mesh, marker: str) -> bool:
    productpage(mesh, 1)
    return any(marker in line for line in _log_lines(mesh, "reviews-v2-0"))


def test_injected_faults_show_their_flags_in_metrics_and_access_log(
        bookinfo: Mesh, prom: Prometheus, reviews_v2: None) -> None:
    apply(bookinfo, RATINGS_FAULT.replace("FAULT", ABORT))
    try:
        # Istio's access log line for an abort: `... 500 FI fault_filter_abort ...`.
        abort_line = '"GET /ratings/0 HTTP/1.1" 500 FI fault_filter_abort'
        wait_for(lambda: _fault_logged(bookinfo, abort_line),
                 timeout=30, interval=0.2, what="the abort in reviews' access log")
        aborted = FAULTED.replace("CODE", "500").replace("FLAG", "FI")
        before = baseline(prom, aborted)[aborted]
        productpage(bookinfo, 20)
        settle(prom, aborted, before + 20)
        # No sidecar answered: the destination is unknown, as in Istio.
        series = prom.series(aborted.removeprefix("sum(").removesuffix(") or vector(0)"))
        assert {s["metric"]["destination_workload"] for s in series} == {"unknown"}, series

        apply(bookinfo, RATINGS_FAULT.replace("FAULT", DELAY))
        delay_line = '"GET /ratings/0 HTTP/1.1" 200 DI via_upstream'
        wait_for(lambda: _fault_logged(bookinfo, delay_line),
                 timeout=30, interval=0.2, what="the delay in reviews' access log")
        delayed = FAULTED.replace("CODE", "200").replace("FLAG", "DI")
        before = baseline(prom, delayed)[delayed]
        productpage(bookinfo, 10)
        settle(prom, delayed, before + 10)
        series = prom.series(delayed.removeprefix("sum(").removesuffix(") or vector(0)"))
        assert {s["metric"]["destination_workload"] for s in series} == {"ratings-v1"}, series
    finally:
        delete(bookinfo, RATINGS_FAULT.replace("FAULT", ABORT))
