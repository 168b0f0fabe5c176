"""Promise 4: a sidecar's Envoy dies; the runner restarts it and its workload is reachable
again within seconds. Traffic through the gateway loses nothing but what a SIGKILL cannot
save: the instance is reported unhealthy at once and requests that meet the dead proxy
(connection refused) are retried on the other replica. A request already sent to the
proxy when it is killed dies with it (Envoy counts it as
`upstream_cx_destroy_remote_with_active_rq`): Istio's default retry policy does not
retry a reset mid-request, since the request may have had effects. The test allows
exactly those, and no other failure.

The mesh balances `hello` round robin for this test (see `balance_round_robin`).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.conftest import Mesh
from tests.helpers import http_get, wait_for
from tests.reliability.conftest import (
    balance_round_robin,
    failure_stats,
    gateway_admin,
    instance,
)
from tests.reliability.load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(90)]

REACHABLE_WITHIN_S = 5.0


def _answers(url: str) -> bool:
    try:
        return http_get(url, timeout=1.0)[0] == 200
    except OSError:
        return False


def test_sidecar_envoy_killed_is_restarted(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    balance_round_robin(mesh)
    victim = instance(mesh, "hello-v1-0")
    inbound = f"http://127.0.0.1:{victim['ports'][0]['inbound_port']}/"
    assert _answers(inbound)

    destroyed_before = _destroyed_in_flight(mesh)
    with SteadyLoad(mesh.gateway_url("/"), rate=150, max_seconds=60) as load:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(victim["proxy_pid"], signal.SIGKILL)
        wait_for(lambda: not _answers(inbound), timeout=5, interval=0.01, what="sidecar down")
        wait_for(lambda: _answers(inbound), timeout=20, interval=0.02, what="sidecar back")
        reachable_after = time.monotonic() - killed_at
        back = instance(mesh, "hello-v1-0")
        before = load.result.bodies["hello from hello-v1-0"]
        wait_for(
            lambda: load.result.bodies["hello from hello-v1-0"] > before + 10,
            timeout=10,
            what="gateway traffic reaching the instance again",
        )
    result = load.result
    print(f"\nsidecar kill: {result.summary()}; reachable again after {reachable_after:.2f}s")
    in_flight_at_kill = _destroyed_in_flight(mesh) - destroyed_before
    print(f"requests in flight on the killed proxy: {in_flight_at_kill}")
    assert result.failed <= in_flight_at_kill <= 3, f"{result.summary()}\n{failure_stats(mesh)}"
    assert reachable_after < REACHABLE_WITHIN_S, reachable_after
    assert back["proxy_pid"] not in (None, victim["proxy_pid"])
    # The app kept running while its sidecar restarted.
    assert back["app_pid"] == victim["app_pid"]


def _destroyed_in_flight(mesh: Mesh) -> int:
    """Gateway requests lost because the upstream connection died under them."""
    _, body, _ = http_get(f"{gateway_admin(mesh)}/stats?filter=cx_destroy_remote_with_active_rq$")
    return sum(int(line.rsplit(":", 1)[1]) for line in body.splitlines() if "hello" in line)
