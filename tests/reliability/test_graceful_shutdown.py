"""Promise 7: `ratline down` drains in-flight requests before it stops the workloads.

Slow requests (1.5 s) are in flight through the gateway and a sidecar when `ratline
down` starts: every one of them completes with 200, because each Envoy is drained
(graceful `drain_listeners`, then wait until no request is active) before any app stops.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import Mesh
from tests.helpers import http_get, pid_alive, wait_for
from tests.reliability.conftest import gateway_admin

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(90)]

IN_FLIGHT = 6
SLOW_MS = 1500


def _gateway_active(mesh: Mesh, admin: str) -> int:
    _, body, _ = http_get(f"{admin}/stats?filter=downstream_rq_active$")
    return sum(
        int(line.rsplit(":", 1)[1])
        for line in body.splitlines()
        if line.startswith("http.") and not line.startswith("http.admin.")
    )


def test_down_lets_in_flight_requests_finish(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    admin = gateway_admin(mesh)
    pids = set(mesh.seen_pids)
    url = mesh.gateway_url(f"/slow?ms={SLOW_MS}")
    started = threading.Barrier(IN_FLIGHT + 1)

    def slow_request(_: int) -> int:
        started.wait(10)
        return http_get(url, timeout=20)[0]

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        futures = [pool.submit(slow_request, n) for n in range(IN_FLIGHT)]
        started.wait(10)
        wait_for(lambda: _gateway_active(mesh, admin) >= IN_FLIGHT, timeout=5, interval=0.01,
                 what="slow requests in flight at the gateway")
        down_at = time.monotonic()
        mesh.ratline("down", "--mesh", str(mesh.dir), timeout=60)
        down_s = time.monotonic() - down_at
        statuses = [f.result(timeout=30) for f in futures]
    print(f"\ngraceful shutdown: {statuses} in flight; `ratline down` took {down_s:.2f}s")
    assert statuses == [200] * IN_FLIGHT
    assert down_s < 15
    assert not [p for p in pids if pid_alive(p)]
