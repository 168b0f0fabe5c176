"""Istio's task "Collecting Metrics for TCP Services" with Bookinfo, as Istio writes it:
ratings v2 reads its stars from `mongodb` (port 27017, a TCP service; a stand-in app, see
docs/differences.md), reviews v3 calls it, and a real Prometheus started from
`ratline prometheus-config` counts the TCP connections and bytes exactly, with the peer
workload named on both reporters (`translate.peer_exchange`).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Mesh, mesh_env, wait_status
from tests.e2e.telemetry_tools import Prometheus, running_prometheus
from tests.helpers import free_fixed_port, wait_for

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
BOOKINFO = REPO / "examples" / "bookinfo"
SAMPLES = REPO / "examples" / "bookinfo-samples"
PROXIES = 9
"""Bookinfo's 6 sidecars and the gateway, ratings-v2, mongodb-v1."""
QUERY = "find ratings\n"
ANSWER = json.dumps([{"rating": 5}, {"rating": 4}]) + "\n"
"""What ratings v2 sends and the stand-in answers (examples/bookinfo/apps/)."""
METRICS = ("istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
           "istio_tcp_received_bytes_total", "istio_tcp_sent_bytes_total")


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    mesh_dir = tmp_path_factory.mktemp("tcp-task") / "mesh"
    shutil.copytree(BOOKINFO, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
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
        yield p


def _apply_sample(mesh: Mesh, name: str) -> None:
    proc = mesh.ratline("apply", "-f", str(SAMPLES / name), "--mesh", str(mesh.dir), check=False)
    assert proc.returncode == 0 and "Error" not in proc.stderr, proc.stderr


def _all_synced(mesh: Mesh) -> bool:
    proxies = mesh.proxy_status()
    return len(proxies) == PROXIES and all(
        t["state"] == "SYNCED" for p in proxies for k, t in p["types"].items() if k != "SDS"
    )


def _totals(prom: Prometheus, selector: str) -> dict[str, float]:
    return {m: prom.value(f"sum({m}{{{selector}}}) or vector(0)") for m in METRICS}


def _page_with_stars(mesh: Mesh) -> str:
    status, body = mesh.get(mesh.gateway_url("/productpage"))
    assert status == 200, body[:300]
    return body


def test_collecting_metrics_for_tcp_services(bookinfo: Mesh, prom: Prometheus) -> None:
    # The task's steps: the database, ratings v2, the subsets, the routes to v3 and v2.
    _apply_sample(bookinfo, "bookinfo-db.yaml")
    _apply_sample(bookinfo, "bookinfo-ratings-v2.yaml")
    _apply_sample(bookinfo, "destination-rule-all.yaml")
    _apply_sample(bookinfo, "virtual-service-ratings-db.yaml")
    wait_for(lambda: _all_synced(bookinfo), timeout=60, interval=0.3,
             what=f"{PROXIES} proxies SYNCED with the ratings-db routes")
    wait_for(lambda: len(prom.targets("envoy-stats")) == PROXIES, timeout=30, interval=0.2,
             what=f"{PROXIES} proxies discovered")
    # Every page now shows reviews v3 with red stars read from the database.
    for _ in range(5):
        page = _page_with_stars(bookinfo)
        assert 'data-version="v3"' in page and 'color="red">★' in page, page[-2000:]
        assert "Ratings service is currently unavailable" not in page

    at_db = ('reporter="destination",destination_workload="mongodb-v1",'
             'destination_version="v1"')  # the task's query
    at_ratings = 'reporter="source",source_workload="ratings-v2",destination_workload="mongodb-v1"'
    prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
    before = {s: _totals(prom, s) for s in (at_db, at_ratings)}
    pages = 10
    for _ in range(pages):
        _page_with_stars(bookinfo)
    # One connection per ratings request, as Istio's ratings app opens.
    added = {METRICS[0]: pages, METRICS[1]: pages,
             METRICS[2]: pages * len(QUERY), METRICS[3]: pages * len(ANSWER)}
    for selector in (at_db, at_ratings):
        want = {m: before[selector][m] + added[m] for m in METRICS}
        wait_for(lambda s=selector, w=want: _totals(prom, s) == w,  # type: ignore[misc]
                 timeout=30, interval=0.2, what=f"{selector}: {want}")
    prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
    assert _totals(prom, at_db) == {m: before[at_db][m] + added[m] for m in METRICS}

    # One series: every connection, the first too, is counted with the client's identity.
    found = prom.series(f"istio_tcp_connections_opened_total{{{at_db}}}")
    assert len(found) == 1, json.dumps(found, indent=1)
    (series,) = found
    labels = series["metric"]
    assert labels["destination_service"] == "mongodb.default.svc.cluster.local"
    assert labels["destination_service_name"] == "mongodb"
    assert labels["destination_app"] == "mongodb"
    assert labels["request_protocol"] == "tcp"
    assert labels["connection_security_policy"] == "mutual_tls"
    assert labels["source_workload"] == "ratings-v2"  # from the client's PROXY header TLV
    assert labels["source_app"] == "ratings" and labels["source_version"] == "v2"
    assert labels["source_canonical_service"] == "ratings"
    assert labels["source_principal"] == (
        "spiffe://cluster.local/ns/default/sa/bookinfo-ratings-v2")
    (client,) = prom.series(f"istio_tcp_connections_opened_total{{{at_ratings}}}")
    assert client["metric"]["destination_version"] == "v1"  # from the endpoint's metadata
    assert client["metric"]["destination_canonical_revision"] == "v1"
