"""Istio's httpbin traffic tasks end to end: circuit breaking, mirroring, retries, outlier
ejection, locality failover and distribution, consistent-hash stickiness, CORS, and the
HTTP route features, through real Envoy sidecars, with Istio's task YAML.

One mesh for the module: the httpbin example (httpbin v1 twice, v2, an in-mesh client in
region r1 zone z1) plus a `flaky` service (two good replicas and one answering 500 to
everything) and a `local` service with a replica per locality. Requests come from the
client, through its sidecar, as Istio's tasks send them from sleep or fortio; the client's
sidecar access log gives Envoy's response flags.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import Mesh
from tests.e2e.traffic_mesh import (
    EXAMPLES,
    Client,
    Instance,
    access_entries,
    applied,
    flags_for,
    holds,
    instances,
    started_mesh,
    stats,
)
from tests.helpers import http_get, wait_for

pytestmark = [pytest.mark.e2e]

SAMPLES = EXAMPLES / "httpbin-samples"
HTTPBIN = "http://httpbin:8000"
FLAKY = "http://flaky:8000"
LOCAL = "http://local:8000"
FLAKY_CLUSTER = "outbound|8000||flaky.default.svc.cluster.local"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    extra = {name: (SAMPLES / name).read_text() for name in ("flaky.yaml", "locality.yaml")}
    yield from started_mesh(tmp_path_factory, "httpbin", extra)


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> Client:
    found = wait_for(lambda: instances(mesh).get("client-0"), timeout=30, what="the client")
    client = Client(found)
    for url in (f"{HTTPBIN}/get", f"{FLAKY}/get", f"{LOCAL}/get"):
        wait_for(lambda u=url: client.call(u)["status"] in (200, 500), timeout=30, what=url)
    return client


def _cluster_config(instance: Instance, cluster: str) -> dict[str, Any] | None:
    status, body, _ = http_get(
        f"http://127.0.0.1:{instance.admin_port}/config_dump?resource=dynamic_active_clusters"
    )
    assert status == 200, body
    for entry in json.loads(body)["configs"]:
        found: dict[str, Any] = entry["cluster"]
        if found["name"] == cluster:
            return found
    return None


def _sample(name: str) -> str:
    return (SAMPLES / name).read_text()


# ---- outlier ejection: first, as the issue saw it, right after the mesh came up -----------


def test_outlier_ejection_takes_the_failing_replica_out_at_once(mesh: Mesh, client: Client) -> None:
    """A replica answering 500 to everything is ejected at its first failure, every time.

    It used to keep a third of the traffic for a while in 2 of 3 runs: Envoy held the
    ejection back for its 1 s `update_merge_window` after the cluster's last host update
    (the runner's health reports at start-up, or the cluster being re-created by the
    DestinationRule), and the panic threshold was Envoy's 50 % instead of Istio's 0."""
    sidecar = client.instance
    for attempt in range(3):  # three fresh clusters: the rule is deleted and applied again
        with applied(mesh, _sample("outlier-detection.yaml"), f"outlier-{attempt}.yaml"):
            wait_for(
                lambda: "outlier_detection" in (_cluster_config(sidecar, FLAKY_CLUSTER) or {}),
                timeout=20,
                what="the DestinationRule in the client's sidecar",
            )
            result = client.load(f"{FLAKY}/get", n=30)
            assert result["codes"].get("500", 0) <= 1, (attempt, result)
            assert result["codes"].get("200", 0) >= 29, (attempt, result)
            assert "flaky-bad-0" not in result["instances"] or result["codes"].get("500") == 1
            active = stats(
                sidecar.admin_port, re.escape(f"{FLAKY_CLUSTER}.outlier_detection.ejections_active")
            )
            assert list(active.values()) == [1], active
        wait_for(
            lambda: "outlier_detection" not in (_cluster_config(sidecar, FLAKY_CLUSTER) or {}),
            timeout=20,
            what="the DestinationRule gone from the client's sidecar",
        )


# ---- circuit breaking (Istio task "Circuit Breaking") -------------------------------------


def test_circuit_breaking_overflows_with_uo(mesh: Mesh, client: Client) -> None:
    log = client.instance.access_log
    with applied(mesh, _sample("destination-rule-circuit-breaker.yaml"), "cb.yaml"):
        holds(lambda: "503" in client.load(f"{HTTPBIN}/delay/0.3", n=6, c=6)["codes"], in_a_row=2)
        before = len(access_entries(log))
        result = client.load(f"{HTTPBIN}/delay/0.3?cb=1", n=30, c=10)
        codes = result["codes"]
        # One connection and one pending request for the whole cluster: of ten at a time,
        # at most a few get through, the others overflow at once.
        assert 1 <= codes.get("200", 0) <= 8, codes
        assert codes.get("503", 0) >= 22, codes
        assert codes.get("200", 0) + codes.get("503", 0) == 30, codes
        flags = wait_for(
            lambda: (f := flags_for(log, "cb=1", since=before)) and sum(f.values()) == 30 and f,
            timeout=10,
            what="30 access log entries",
        )
        assert flags[(503, "UO")] == codes["503"], flags
        overflow = stats(
            client.instance.admin_port,
            "outbound\\|8000\\|\\|httpbin.*upstream_rq_pending_overflow$",
        )
        assert sum(overflow.values()) >= codes["503"], overflow


def test_no_healthy_upstream_is_uh(mesh: Mesh, client: Client) -> None:
    log = client.instance.access_log
    with applied(mesh, _sample("virtual-service-httpbin-v9.yaml"), "v9.yaml"):
        holds(lambda: client.call(f"{HTTPBIN}/get")["status"] == 503, in_a_row=3)
        before = len(access_entries(log))
        assert client.call(f"{HTTPBIN}/get?uh=1")["status"] == 503
        flags = wait_for(
            lambda: flags_for(log, "uh=1", since=before), timeout=10, what="the access log entry"
        )
        assert flags == {(503, "UH"): 1}


# ---- mirroring (Istio task "Mirroring") ---------------------------------------------------


def _mirrored(v2: Instance, marker: str) -> int:
    text = v2.app_log.read_text(errors="replace") if v2.app_log.exists() else ""
    return sum(1 for line in text.splitlines() if marker in line and "-shadow" in line)


def _settled(count: Any) -> int:
    """The value of `count()` once it stopped changing (mirrors are sent asynchronously)."""
    seen: list[int] = []

    def stable() -> int | None:
        seen.append(count())
        return seen[-1] if len(seen) >= 8 and len(set(seen[-8:])) == 1 else None

    return wait_for(stable, timeout=20, interval=0.25, what="the mirrored count to settle")


def test_mirroring_copies_requests_to_v2(mesh: Mesh, client: Client) -> None:
    v2 = instances(mesh)["httpbin-v2-0"]
    with applied(mesh, _sample("mirror.yaml"), "mirror.yaml"):
        holds(lambda: client.load(f"{HTTPBIN}/get", n=6)["versions"] == {"v1": 6}, in_a_row=2)
        result = client.load(f"{HTTPBIN}/get?mirror=all", n=20)
        assert result["versions"] == {"v1": 20}, result  # answers only come from v1
        wait_for(lambda: _mirrored(v2, "mirror=all") >= 20, timeout=20, what="20 mirrored requests")
        assert _settled(lambda: _mirrored(v2, "mirror=all")) == 20
        half = _sample("mirror.yaml").replace("value: 100.0", "value: 50.0")
        assert half != _sample("mirror.yaml")
        with applied(mesh, half, "mirror.yaml"):
            holds(lambda: _mirror_share(client, v2) < 1.0, in_a_row=1, timeout=20)
            result = client.load(f"{HTTPBIN}/get?mirror=half", n=200, c=4)
            assert result["versions"] == {"v1": 200}, result
            copies = _settled(lambda: _mirrored(v2, "mirror=half"))
            # 50 % of 200: sd 7; 75..125 is ±3.5 sd, and 25 % or 100 % fall outside.
            assert 75 <= copies <= 125, copies


def _mirror_share(client: Client, v2: Instance) -> float:
    marker = f"probe{time.monotonic_ns()}"
    client.load(f"{HTTPBIN}/get?{marker}", n=20)
    return _settled(lambda: _mirrored(v2, marker)) / 20


# ---- retries --------------------------------------------------------------------------------


def test_retries_hide_the_failing_replica_and_urx_when_they_run_out(
    mesh: Mesh, client: Client
) -> None:
    log = client.instance.access_log
    with applied(mesh, _sample("virtual-service-flaky-retries.yaml"), "retries.yaml"):
        holds(lambda: client.load(f"{FLAKY}/get", n=6)["codes"] == {"200": 6}, in_a_row=3)
        result = client.load(f"{FLAKY}/get", n=30)
        assert result["codes"] == {"200": 30}, result
        assert "flaky-bad-0" not in result["instances"]
    with applied(mesh, _sample("virtual-service-flaky-bad-retries.yaml"), "urx.yaml"):
        holds(lambda: client.call(f"{FLAKY}/get")["status"] == 500, in_a_row=3)
        before = len(access_entries(log))
        retried = stats(
            client.instance.admin_port, "outbound\\|8000\\|bad\\|flaky.*upstream_rq_retry$"
        )
        assert client.call(f"{FLAKY}/get?urx=1")["status"] == 500
        flags = wait_for(
            lambda: flags_for(log, "urx=1", since=before), timeout=10, what="the access log entry"
        )
        assert flags == {(500, "URX"): 1}, flags
        after = stats(
            client.instance.admin_port, "outbound\\|8000\\|bad\\|flaky.*upstream_rq_retry$"
        )
        assert sum(after.values()) - sum(retried.values()) == 2  # attempts: 2 retries


# ---- consistent hashing ---------------------------------------------------------------------


def test_consistent_hash_keeps_each_user_on_one_replica(mesh: Mesh, client: Client) -> None:
    with applied(mesh, _sample("destination-rule-consistent-hash.yaml"), "hash.yaml"):
        holds(
            lambda: (
                len(client.load(f"{HTTPBIN}/get", n=10, headers={"x-user": "probe"})["instances"])
                == 1
            ),
            in_a_row=3,
        )
        chosen = {}
        for user in range(12):
            result = client.load(f"{HTTPBIN}/get", n=10, c=2, headers={"x-user": f"user{user}"})
            assert len(result["instances"]) == 1, (user, result)  # sticky
            chosen[user] = next(iter(result["instances"]))
        # 12 users on 3 replicas: all on one by chance has odds of 3^-11.
        assert len(set(chosen.values())) >= 2, chosen


# ---- locality load balancing (Istio tasks "Locality failover" and "distribution") ---------


def test_locality_failover_goes_to_the_next_closest(mesh: Mesh, client: Client) -> None:
    found = instances(mesh)
    near, far = found["local-near-0"], found["local-far-0"]
    with applied(mesh, _sample("destination-rule-locality-failover.yaml"), "failover.yaml"):
        holds(
            lambda: client.load(f"{LOCAL}/get", n=10)["instances"] == {"local-near-0": 10},
            in_a_row=3,
        )
        try:
            assert http_get(near.url("/admin/fail?status=503"))[0] == 200
            result = client.load(f"{LOCAL}/get", n=30)
            # the near replica is ejected at its first 503; the same zone has no other,
            # so the rest go to the same region's other zone, none across regions
            assert result["codes"].get("503", 0) <= 1, result
            assert result["instances"].get("local-far-0", 0) >= 29, result
            assert http_get(far.url("/admin/fail?status=503"))[0] == 200
            result = client.load(f"{LOCAL}/get", n=30)
            assert result["codes"].get("503", 0) <= 1, result
            assert result["instances"].get("local-farther-0", 0) >= 29, result
        finally:
            for replica in (near, far):
                http_get(replica.url("/admin/fail?status=0"))


def test_locality_distribution_weighs_localities(mesh: Mesh, client: Client) -> None:
    with applied(mesh, _sample("destination-rule-locality-distribute.yaml"), "distribute.yaml"):
        holds(
            lambda: "local-near-0" not in client.load(f"{LOCAL}/get", n=10)["instances"], in_a_row=3
        )
        result = client.load(f"{LOCAL}/get", n=200, c=4)
        counts = result["instances"]
        assert set(counts) <= {"local-far-0", "local-farther-0"}, counts
        # 80/20 of 200: the r2 count has sd 5.7; 22..58 is ±3.2 sd; 50/50 or 90/10 fall out
        assert 22 <= counts.get("local-farther-0", 0) <= 58, counts


# ---- CORS (Istio's corsPolicy) --------------------------------------------------------------


def _preflight(client: Client, origin: str) -> dict[str, Any]:
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    return client.call(f"{HTTPBIN}/anything", headers=headers, method="OPTIONS")


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def test_cors_preflight(mesh: Mesh, client: Client) -> None:
    sample = _sample("virtual-service-httpbin-cors.yaml")
    with applied(mesh, sample, "cors.yaml"):
        holds(
            lambda: (
                "access-control-allow-origin"
                in _lower(_preflight(client, "https://good.example")["headers"])
            ),
            in_a_row=3,
        )
        answer = _preflight(client, "https://good.example")
        headers = _lower(answer["headers"])
        assert answer["status"] == 200
        assert headers["access-control-allow-origin"] == "https://good.example"
        assert headers["access-control-allow-methods"] == "GET,POST"
        assert headers["access-control-allow-headers"] == "x-custom"
        assert headers["access-control-max-age"] == "86400"
        assert headers["access-control-allow-credentials"] == "true"
        assert "x-httpbin-instance" not in headers  # answered by Envoy, not the app
        # an origin that does not match: forwarded to the app (unmatchedPreflights FORWARD)
        other = _preflight(client, "https://evil.example")
        assert "access-control-allow-origin" not in _lower(other["headers"])
        assert "x-httpbin-instance" in _lower(other["headers"])
        # a simple request from the allowed origin gets the CORS answer headers
        simple = client.call(f"{HTTPBIN}/get", headers={"Origin": "https://good.example"})
        assert _lower(simple["headers"])["access-control-expose-headers"] == "x-httpbin-version"
        ignore = sample.replace("unmatchedPreflights: FORWARD", "unmatchedPreflights: IGNORE")
        assert ignore != sample
        with applied(mesh, ignore, "cors.yaml"):
            holds(
                lambda: (
                    "x-httpbin-instance"
                    not in _lower(_preflight(client, "https://evil.example")["headers"])
                ),
                in_a_row=3,
            )
            other = _preflight(client, "https://evil.example")
            assert "access-control-allow-origin" not in _lower(other["headers"])


# ---- the HTTP route features, one request each ---------------------------------------------

FEATURES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin-features
spec:
  hosts: [httpbin]
  http:
  - match:
    - uri: {prefix: /features/and}
      headers: {x-test: {exact: one}}
      queryParams: {q: {exact: "1"}}
    rewrite: {uri: /anything/rewritten}
    headers:
      request: {set: {x-added: "yes"}, remove: [x-test]}
      response: {set: {x-resp: "yes"}}
    route:
    - destination: {host: httpbin}
  - match:
    - uri: {prefix: /features/or-a}
    - uri: {prefix: /features/or-b}
    directResponse: {status: 200, body: {string: either}}
  - match:
    - uri: {prefix: /features/without}
      withoutHeaders: {x-block: {}}
    directResponse: {status: 200, body: {string: without}}
  - match:
    - uri: {exact: /features/method}
      method: {exact: POST}
    directResponse: {status: 201, body: {string: posted}}
  - match:
    - uri: {regex: "^/features/regex/[0-9]+$"}
    directResponse: {status: 202, body: {bytes: cmVnZXg=}}
  - match:
    - uri: {exact: /features/case}
      ignoreUriCase: true
    directResponse: {status: 203, body: {string: case}}
  - match:
    - uri: {prefix: /features/authority}
      authority: {exact: nope}
    directResponse: {status: 418}
  - match:
    - uri: {prefix: /features/redirect}
    redirect: {uri: /anything/moved, redirectCode: 307}
  - match:
    - uri: {prefix: /features/timeout}
    rewrite: {uri: /delay/3}
    timeout: 0.5s
    retries: {attempts: 0}
    route:
    - destination: {host: httpbin}
  - match:
    - uri: {prefix: /features/grpc-abort}
    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}
    route:
    - destination: {host: httpbin}
  - match:
    - uri: {prefix: /features/delegated}
    delegate: {name: httpbin-delegate}
  - route:
    - destination: {host: httpbin}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin-delegate
spec:
  http:
  - match:
    - uri: {prefix: /features/delegated/a}
    directResponse: {status: 200, body: {string: delegated-a}}
"""


def test_http_route_features(mesh: Mesh, client: Client) -> None:
    def get(path: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
        return client.call(f"{HTTPBIN}{path}", headers=headers, method=method)

    log = client.instance.access_log
    with applied(mesh, FEATURES, "features.yaml"):
        holds(lambda: get("/features/or-b")["body"] == "either", in_a_row=3)
        both = get("/features/and?q=1", {"x-test": "one", "x-keep": "k"})
        echoed = json.loads(both["body"])
        assert echoed["url"].startswith("/anything/rewritten"), echoed  # prefix rewrite
        assert echoed["headers"]["X-Added"] == "yes" and "X-Test" not in echoed["headers"]
        assert _lower(both["headers"])["x-resp"] == "yes"
        # AND within a block: without the query parameter the rule does not match
        assert get("/features/and", {"x-test": "one"})["status"] == 404  # httpbin has no /features
        assert get("/features/or-a")["body"] == "either"  # OR of blocks
        assert get("/features/without")["body"] == "without"
        assert get("/features/without", {"x-block": "1"})["status"] == 404  # on to httpbin
        assert get("/features/method")["status"] == 404
        assert get("/features/method", method="POST")["status"] == 201
        assert (get("/features/regex/42")["status"], get("/features/regex/42")["body"]) == (
            202,
            "regex",
        )
        assert get("/features/regex/x")["status"] == 404
        assert get("/FEATURES/Case")["status"] == 203
        assert get("/features/authority")["status"] == 404  # authority is httpbin:8000
        moved = get("/features/redirect")  # the client follows the 307
        assert json.loads(moved["body"])["url"] == "/anything/moved"
        before = len(access_entries(log))
        timed_out = get("/features/timeout")
        assert timed_out["status"] == 504 and timed_out["seconds"] < 2.5, timed_out
        flags = wait_for(
            lambda: flags_for(log, "/features/timeout", since=before),
            timeout=10,
            what="the access log entry",
        )
        assert flags == {(504, "UT"): 1}, flags
        # a gRPC request (by its content type) gets the gRPC status in the answer
        before = len(access_entries(log))
        aborted = get("/features/grpc-abort", {"content-type": "application/grpc"})
        assert _lower(aborted["headers"]).get("grpc-status") == "14", aborted
        flags = wait_for(
            lambda: flags_for(log, "/features/grpc-abort", since=before),
            timeout=10,
            what="the access log entry",
        )
        assert flags == {(200, "FI"): 1}, flags
        assert get("/features/delegated/a")["body"] == "delegated-a"
        assert get("/features/delegated/b")["status"] == 404  # no delegate rule: on to httpbin
