"""The dashboard in a real headless Chromium, on Bookinfo with traffic flowing.

One mesh for the module (`ratline up -d` with the Prometheus add-on scraping every
second, traces sampled at 100%), a background client loading /productpage a few times a
second, one browser. The tests read what the page shows (the SVG's nodes and edges,
the tables) and change the mesh the way a user would (`ratline apply`, a file in the
mesh directory, a killed sidecar), each undoing what it did; the killed sidecar comes
last (its restart is held back 60 s by the module's backoff setting). Every test saves
a screenshot under `.ci/artifacts/dashboard/`.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import chromium, screenshot
from tests.e2e.conftest import Mesh, mesh_env, wait_status
from tests.helpers import free_fixed_port, http_get, wait_for
from tests.tools import tool

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
BOOKINFO = REPO / "examples" / "bookinfo"
MESH_YAML = "defaultConfig:\n  tracing:\n    sampling: 100\n"
TRAFFIC_INTERVAL_S = 0.25
TRAFFIC_MAX_S = 900.0
UI_TIMEOUT_MS = 30_000
GATEWAY = "w:istio-system/istio-ingressgateway"
RATINGS_SERVICE = "s:ratings.default.svc.cluster.local"


def w(name: str) -> str:
    return f"w:default/{name}"


BOOKINFO_EDGES = {
    (GATEWAY, w("productpage-v1")),
    (w("productpage-v1"), w("details-v1")),
    (w("productpage-v1"), w("reviews-v1")),
    (w("productpage-v1"), w("reviews-v2")),
    (w("productpage-v1"), w("reviews-v3")),
    (w("reviews-v2"), w("ratings-v1")),
    (w("reviews-v3"), w("ratings-v1")),
}
"""Every call a page load makes (reviews v1 shows no stars: it never calls ratings)."""
RATINGS_ABORT = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - fault:
      abort: {httpStatus: 500, percentage: {value: 100}}
    route:
    - destination: {host: ratings}
"""
BROKEN_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-broken}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 150
"""


class Traffic:
    """Loads /productpage every `TRAFFIC_INTERVAL_S` until stopped (at most TRAFFIC_MAX_S)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.statuses: list[int] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + TRAFFIC_MAX_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                self.statuses.append(http_get(self.url, timeout=10)[0])
            except OSError:
                self.statuses.append(0)
            self.stop.wait(TRAFFIC_INTERVAL_S)


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh_dir = tmp_path_factory.mktemp("dashboard") / "mesh"
    shutil.copytree(BOOKINFO, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
    (mesh_dir / "mesh.yaml").write_text(MESH_YAML)
    env = mesh_env(free_fixed_port(), RATLINE_PROMETHEUS=tool("prometheus"),
                   RATLINE_PROMETHEUS_PORT="0", RATLINE_PROMETHEUS_SCRAPE_INTERVAL="1s",
                   RATLINE_RESTART_BACKOFF_INITIAL_S="60", RATLINE_RESTART_BACKOFF_MAX_S="60")
    mesh = Mesh(mesh_dir, env)
    traffic = Traffic(mesh.gateway_url("/productpage"))
    try:
        mesh.up()
        wait_status(mesh, mesh.gateway_url("/productpage"), timeout=30)
        traffic.thread.start()
        yield mesh
    finally:
        traffic.stop.set()
        if traffic.thread.is_alive():
            traffic.thread.join(timeout=15)
        mesh.down()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as context:
        yield context


def login_url(mesh: Mesh) -> str:
    out = mesh.ratline("dashboard", "--no-open", "--mesh", str(mesh.dir)).stdout.strip()
    assert "/ui/login?code=" in out, out
    return out


@pytest.fixture(scope="module")
def ui(bookinfo: Mesh, browser: Any) -> Iterator[Any]:
    """A page logged in through `ratline dashboard`'s one-time link."""
    page = browser.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    page.goto(login_url(bookinfo))
    page.wait_for_selector("svg.graph")
    yield page
    page.close()


def base(page: Any) -> str:
    return str(page.url).split("/ui/")[0] + "/ui/"


def show(page: Any, route: str) -> None:
    """Open a route of the page and wait until it rendered (afresh)."""
    page.evaluate("document.querySelector('#main').dataset.page = ''")
    target = base(page) + "#" + route
    if page.url == target:
        page.reload()
    else:
        page.goto(target)
    page.wait_for_function(
        "r => document.querySelector('#main').dataset.page === r.split('/')[1]",
        arg=route.split("?")[0],
    )


def drawn_edges(page: Any) -> set[tuple[str, str]]:
    found = page.eval_on_selector_all(
        "svg.graph g.edge", "els => els.map(e => [e.dataset.source, e.dataset.target])"
    )
    return {(a, b) for a, b in found}


def test_login_link_works_once_then_the_page_asks_for_the_token(
    bookinfo: Mesh, browser: Any
) -> None:
    status, body, _ = http_get(f"http://{bookinfo.run_info()['control_plane']['admin']}/v1/graph")
    assert status == 401, body
    url = login_url(bookinfo)
    page = browser.new_page()
    try:
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("svg.graph")
        # The session reads every admin path, and changes nothing.
        assert page.evaluate("fetch('/v1/status').then(r => r.status)") == 200
        assert page.evaluate(
            "fetch('/v1/apply', {method: 'POST', body: 'kind: x'}).then(r => r.status)") == 401
        browser.clear_cookies()
        page.goto(url)  # spent: the page asks for the token instead
        page.wait_for_selector("#login:not([hidden])")
        assert "used already" in page.inner_text("#login-why")
        page.fill("#token", "not-the-token")
        page.click("#login button")
        page.wait_for_selector("#login-why .error-text")
        assert "not the mesh's admin token" in page.inner_text("#login-why")
        token = (bookinfo.dir / ".ratline" / "admin-token").read_text().strip()
        page.fill("#token", token)
        page.click("#login button")
        page.wait_for_selector("svg.graph")
        screenshot(page, "login-then-graph")
    finally:
        page.close()


def test_graph_shows_bookinfo_with_exactly_the_edges_traffic_took(ui: Any) -> None:
    show(ui, "/graph")

    def labels() -> list[str]:
        return list(ui.eval_on_selector_all("svg.graph g.edge text",
                                            "els => els.map(e => e.textContent)"))

    # Envoy flushes histograms every 5 s: latencies follow the request counts.
    wait_for(lambda: drawn_edges(ui) == BOOKINFO_EDGES
             and all("rps" in t and "p99" in t for t in labels()), timeout=60, interval=0.5,
             what=f"the edges {sorted(BOOKINFO_EDGES)} with rates and p99; drawn: "
                  f"{drawn_edges(ui)}")
    assert ui.inner_text("#source") == "Prometheus"
    nodes = set(ui.eval_on_selector_all("svg.graph g.node", "els => els.map(e => e.dataset.id)"))
    assert nodes == {GATEWAY} | {w(n) for n in (
        "productpage-v1", "details-v1", "reviews-v1", "reviews-v2", "reviews-v3", "ratings-v1")}
    groups = ui.eval_on_selector_all(
        "svg.graph g.group", "els => els.map(e => [e.dataset.id, e.textContent])")
    reviews = [text for gid, text in groups if gid == "s:reviews.default.svc.cluster.local"]
    assert reviews and reviews[0].startswith("reviews"), groups
    assert ui.locator("svg.graph g.edge g.lock").count() == len(BOOKINFO_EDGES)  # mTLS
    ui.click(f"svg.graph g.edge[data-target='{w('details-v1')}'] path.hit", force=True)
    detail = ui.inner_text("#detail")
    assert "details.default.svc.cluster.local" in detail and "p50 / p90 / p99" in detail, detail
    screenshot(ui, "graph")
    # The same graph from the proxies' own counters, no Prometheus involved.
    show(ui, "/graph?source=collector")
    wait_for(lambda: drawn_edges(ui) == BOOKINFO_EDGES and ui.inner_text("#source")
             == "proxies' counters", timeout=30, interval=0.5, what="the collector's graph")
    screenshot(ui, "graph-collector")


def test_service_page_shows_charts_endpoints_and_the_config_that_applies(ui: Any) -> None:
    show(ui, "/services/default/reviews")
    wait_for(lambda: int(ui.get_attribute("[data-chart='Requests per second'] svg",
                                          "data-points") or 0) >= 2,
             timeout=30, interval=0.5, what="a requests chart with points")
    endpoints = ui.eval_on_selector_all("tr[data-endpoint]", "els => els.length")
    assert endpoints == 3
    config = set(ui.eval_on_selector_all("tr[data-config]",
                                         "els => els.map(e => e.dataset.config)"))
    assert config == {"DestinationRule default/reviews"}, config
    screenshot(ui, "service-reviews")


def test_a_500_fault_turns_its_edge_red(bookinfo: Mesh, ui: Any) -> None:
    applied = bookinfo.apply_ok(RATINGS_ABORT, "ratings-abort.yaml")
    try:
        show(ui, "/graph")
        failing = f"svg.graph g.edge[data-target='{RATINGS_SERVICE}'][data-health='failing']"
        ui.wait_for_selector(failing, timeout=60_000)
        sources = set(ui.eval_on_selector_all(failing, "els => els.map(e => e.dataset.source)"))
        assert sources == {w("reviews-v2"), w("reviews-v3")}, sources
        rates = ui.eval_on_selector_all(failing, "els => els.map(e => e.dataset.errorRate)")
        assert all(float(r) == 1.0 for r in rates), rates
        assert all("100% err" in t for t in ui.eval_on_selector_all(
            failing + " text", "els => els.map(e => e.textContent)"))
        screenshot(ui, "fault-500")
    finally:
        bookinfo.delete_file(applied)


def test_a_broken_virtual_service_shows_under_config_health_with_its_field(
    bookinfo: Mesh, ui: Any
) -> None:
    broken = bookinfo.dir / "broken-vs.yaml"
    broken.write_text(BROKEN_VS)
    try:
        show(ui, "/config")
        row = ("#findings tr[data-resource='VirtualService default/reviews-broken']"
               "[data-field='spec.http[0].route[0].weight']")
        ui.wait_for_selector(row, timeout=30_000)
        text = ui.inner_text(row)
        assert "broken-vs.yaml" in text and "must be 0..100" in text, text
        assert ui.inner_text("#findings-count") != ""
        screenshot(ui, "config-health")
    finally:
        broken.unlink()
    show(ui, "/config")
    ui.wait_for_selector(row, state="detached", timeout=30_000)


def test_a_trace_shows_its_spans(ui: Any) -> None:
    show(ui, "/traces?service=ratings")
    ui.wait_for_selector("#traces tr[data-trace]")
    # A trace whose spans all arrived (the proxies export spans within a few seconds).
    def settled() -> list[dict[str, Any]]:
        listed = ui.evaluate("fetch('/v1/traces?service=ratings&limit=50').then(r => r.json())")
        return [t for t in listed["traces"]
                if t["start_unix_nano"] / 1e9 < time.time() - 10 and t["span_count"] >= 8]

    trace_id = wait_for(settled, timeout=40, interval=1, what="a trace of 10 s ago")[0]["trace_id"]
    row = f"#traces tr[data-trace='{trace_id}']"
    ui.click(f"{row} a")
    ui.wait_for_selector("#waterfall .span-row")
    admin = ui.evaluate(f"fetch('/v1/traces/{trace_id}').then(r => r.json())")
    rows = ui.eval_on_selector_all("#waterfall .span-row",
                                   "els => els.map(e => [e.dataset.span, e.dataset.service])")
    assert sorted(r[0] for r in rows) == sorted(s["span_id"] for s in admin["spans"])
    services = {r[1] for r in rows}
    assert {"istio-ingressgateway.istio-system", "productpage.default", "reviews.default",
            "ratings.default", "details.default"} <= services, services
    ui.click("#waterfall .span-row >> nth=0")
    tags = ui.inner_text("#waterfall .span-attrs:not([hidden])")
    assert "response_flags" in tags and "http.status_code" in tags, tags
    screenshot(ui, "trace")


def test_a_killed_sidecar_shows_as_not_connected(bookinfo: Mesh, ui: Any) -> None:
    info = bookinfo.run_info()
    ratings = next(i for i in info["instances"] if i["name"] == "ratings-v1-0")
    os.kill(int(ratings["proxy_pid"]), signal.SIGKILL)
    show(ui, "/proxies")
    row = "#proxies tr[data-instance='ratings-v1-0'][data-sync='NOT CONNECTED']"
    ui.wait_for_selector(row, timeout=30_000)

    # The killed proxy's endpoint change is pushed to the others: each is STALE until it ACKs,
    # so the page (it re-reads every few seconds) is watched until they all show SYNCED again.
    def rows() -> list[list[str]]:
        listed: list[list[str]] = ui.eval_on_selector_all(
            "#proxies tr[data-instance]",
            "els => els.map(e => [e.dataset.instance, e.dataset.sync])")
        return listed

    def only_ratings_unsynced() -> bool:
        return {name for name, sync in rows() if sync != "SYNCED"} == {"ratings-v1-0"}

    try:
        wait_for(only_ratings_unsynced, timeout=30, interval=0.5,
                 what="every proxy but ratings' SYNCED")
    except AssertionError as error:
        raise AssertionError(rows()) from error
    screenshot(ui, "proxies-killed-sidecar")
    show(ui, "/graph")
    ratings_node = f"svg.graph g.node[data-id='{w('ratings-v1')}']"
    ui.wait_for_selector(f"{ratings_node}[data-health='disconnected']")
    screenshot(ui, "graph-killed-sidecar")
