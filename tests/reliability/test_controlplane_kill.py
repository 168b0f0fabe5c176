"""Promise 1: the control plane killed (SIGKILL) while traffic flows.

Sidecars and the gateway keep routing on their last config; the runner restarts the
control plane; proxies reconnect (with Envoy's backoff) and resync; config applied
through the API before the kill is still there afterwards and still in effect.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from tests.e2e.conftest import Mesh
from tests.helpers import http_get, wait_for
from tests.reliability.conftest import failure_stats, resources
from tests.reliability.load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(90)]

HEADER_ROUTE = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: hello-teapot
spec:
  hosts: ["teapot.example"]
  gateways: [hello-gateway]
  http:
  - route:
    - destination:
        host: hello
        port:
          number: 8000
    headers:
      response:
        set:
          x-ratline-applied: "before-kill"
"""


def _all_synced(mesh: Mesh, cp_pid: int) -> bool:
    info = mesh.run_info()
    cp = info.get("control_plane") or {}
    if not cp.get("pid") or cp["pid"] == cp_pid:
        return False
    proxies = mesh.proxy_status()
    want = 1 + len(info["instances"])
    connected = [p for p in proxies if p.get("connected")]
    return len(connected) >= want


def test_controlplane_sigkill_under_load(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    applied = mesh.apply(HEADER_ROUTE)
    assert applied.returncode == 0, applied.stderr
    wait_for(
        lambda: mesh.get(mesh.gateway_url("/"), {"host": "teapot.example"})[0] == 200,
        timeout=15,
        what="applied route in effect",
    )

    cp_pid = mesh.run_info()["control_plane"]["pid"]
    with SteadyLoad(mesh.gateway_url("/"), rate=100, max_seconds=60) as load:
        time.sleep(1.0)  # traffic flows before the kill
        os.kill(cp_pid, signal.SIGKILL)
        # While the control plane is down the proxies route on their last config.
        time.sleep(2.0)
        mid_sent, mid_failed = load.snapshot()
        wait_for(
            lambda: _all_synced(mesh, cp_pid),
            timeout=40,
            interval=0.5,
            what="control plane restarted and every proxy reconnected",
        )
        time.sleep(1.0)
    result = load.result
    assert result.failed == 0, f"{result.summary()}\n{failure_stats(mesh)}"
    assert mid_failed == 0 and mid_sent > 100, result.summary()
    assert result.sent >= 300, result.summary()

    # The config applied before the kill survived: still listed and still in effect.
    names = {(r["kind"], r["name"], r["origin"]) for r in resources(mesh)}
    assert ("VirtualService", "hello-teapot", "applied") in names, names
    status, _, headers = http_get(mesh.gateway_url("/"), {"host": "teapot.example"})
    assert status == 200 and headers.get("x-ratline-applied") == "before-kill", headers
    proxies: list[dict[str, Any]] = mesh.proxy_status()
    assert all(p.get("connected") for p in proxies), proxies
