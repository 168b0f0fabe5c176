"""Promise 3: a workload instance crashes under load and no request fails.

The runner reports the crashed instance unhealthy at once, so its endpoint leaves the
gateway's load-balancing set within a fraction of a second; requests already on their
way to it are retried on the other replica by Istio's default retry policy (no
VirtualService sets one here). The runner restarts the app and it serves again. The mesh
balances `hello` round robin for this test (see `balance_round_robin`).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.e2e.conftest import Mesh
from tests.helpers import wait_for
from tests.reliability.conftest import (
    balance_round_robin,
    endpoint_health_flags,
    failure_stats,
    gateway_admin,
    instance,
)
from tests.reliability.load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(90)]

HELLO_CLUSTER = "outbound|8000||hello.default.svc.cluster.local"
EJECTED_WITHIN_S = 1.0


def test_app_crash_loses_no_request(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    balance_round_robin(mesh)
    admin = gateway_admin(mesh)
    victim = instance(mesh, "hello-v1-0")
    endpoint = f"127.0.0.1:{victim['ports'][0]['inbound_port']}"
    assert endpoint_health_flags(admin, HELLO_CLUSTER)[endpoint] == "healthy"

    with SteadyLoad(mesh.gateway_url("/"), rate=150, max_seconds=60) as load:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(victim["app_pid"], signal.SIGKILL)
        wait_for(
            lambda: "failed_eds_health" in endpoint_health_flags(admin, HELLO_CLUSTER)[endpoint],
            timeout=10,
            interval=0.01,
            what="the crashed endpoint marked unhealthy in the gateway",
        )
        ejected_after = time.monotonic() - killed_at
        restarted = wait_for(
            lambda: (
                (i := instance(mesh, "hello-v1-0"))["app_pid"] not in (None, victim["app_pid"])
                and i["healthy"]
                and i
            ),
            timeout=30,
            what="the app restarted and healthy",
        )
        wait_for(
            lambda: endpoint_health_flags(admin, HELLO_CLUSTER)[endpoint] == "healthy",
            timeout=10,
            what="the endpoint back in the load-balancing set",
        )
        before = load.result.bodies["hello from hello-v1-0"]
        wait_for(
            lambda: load.result.bodies["hello from hello-v1-0"] > before + 10,
            timeout=10,
            what="traffic reaching the restarted replica",
        )
    result = load.result
    print(f"\napp crash: {result.summary()}; endpoint ejected after {ejected_after:.3f}s")
    assert result.failed == 0, f"{result.summary()}\n{failure_stats(mesh)}"
    assert ejected_after < EJECTED_WITHIN_S, ejected_after
    assert restarted["restarts"] >= 1
