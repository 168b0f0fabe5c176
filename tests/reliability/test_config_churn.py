"""Promise 2: 100 VirtualService / DestinationRule changes in a row under load, no failure.

Each change is applied through the admin API (as `ratline apply` does) and alternates
what Envoy must rebuild: a new subset cluster that the route switches to in the same
apply (the cluster must be warm before the route uses it, and the old one kept until no
route points at it), load-balancer and connection-pool changes (cluster replaced and
drained), route header and timeout changes (RDS only).
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from tests.e2e.conftest import Mesh
from tests.helpers import http_get, wait_for
from tests.reliability.conftest import admin_url, failure_stats
from tests.reliability.load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(120)]

CHANGES = 100
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def churn_yaml(i: int) -> str:
    lb = ("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")[i % 3]
    return f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: hello
spec:
  host: hello
  trafficPolicy:
    loadBalancer:
      simple: {lb}
    connectionPool:
      tcp:
        maxConnections: {1000 + i}
  subsets:
  - name: v1
    labels:
      version: v1
  - name: gen-{i}
    labels:
      app: hello
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: hello
spec:
  hosts: ["*"]
  gateways: [hello-gateway]
  http:
  - timeout: {10 + i}s
    route:
    - destination:
        host: hello
        subset: {"gen-" + str(i) if i % 2 == 0 else "v1"}
        port:
          number: 8000
    headers:
      response:
        set:
          x-churn: "{i}"
"""


def apply(url: str, text: str, auth: dict[str, str]) -> None:
    req = urllib.request.Request(url, data=text.encode(), method="POST",
                                 headers={"content-type": "application/yaml", **auth})
    with NO_PROXY.open(req, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["applied"], body


def test_hundred_changes_under_load(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    url = admin_url(mesh, "/v1/apply")
    with SteadyLoad(mesh.gateway_url("/"), rate=150, max_seconds=90) as load:
        time.sleep(0.5)
        started = time.monotonic()
        for i in range(CHANGES):
            apply(url, churn_yaml(i), mesh.admin_headers())
            time.sleep(0.05)
        churn_s = time.monotonic() - started
        last = str(CHANGES - 1)
        wait_for(
            lambda: http_get(mesh.gateway_url("/"))[2].get("x-churn") == last,
            timeout=15,
            what="the last change in effect",
        )
        time.sleep(0.5)
    result = load.result
    print(f"\nconfig churn: {CHANGES} changes in {churn_s:.1f}s; {result.summary()}")
    assert result.failed == 0, f"{result.summary()}\n{failure_stats(mesh)}"
    assert result.sent > 200
