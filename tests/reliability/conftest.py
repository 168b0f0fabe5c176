"""A small real mesh for reliability tests: `hello` (2 replicas) behind the ingress gateway.

Reuses the e2e `make_mesh` fixture (the real CLI: `ratline up -d`, stopped at teardown
even on failure). Every test marked `reliability` gets its own mesh, so a fault
injected by one test cannot leak into the next.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mesh, make_mesh, wait_status
from tests.e2e.hello_mesh import SERVICE_AND_GATEWAY_YAML
from tests.e2e.hello_mesh import workload_yaml as hello_workload_yaml
from tests.helpers import http_get, wait_for

__all__ = ["hello_mesh", "hello_mesh_files", "make_mesh"]

APP = Path(__file__).resolve().parent / "fixtures" / "app.py"

SERVICE_YAML = SERVICE_AND_GATEWAY_YAML


def workload_yaml(replicas: int = 2, extra: str = "") -> str:
    return hello_workload_yaml(app_file="app.py", replicas=replicas, extra=extra)


def instance(mesh: Mesh, name: str) -> dict[str, Any]:
    return next(i for i in mesh.run_info()["instances"] if i["name"] == name)


def admin_url(mesh: Mesh, path: str) -> str:
    return f"http://{mesh.run_info()['control_plane']['admin']}{path}"


def resources(mesh: Mesh) -> list[dict[str, Any]]:
    """Every stored resource, from the control plane's admin API."""
    status, body, _ = http_get(admin_url(mesh, "/v1/resources"), mesh.admin_headers())
    assert status == 200, body
    return list(json.loads(body)["resources"])


def wait_both_replicas(mesh: Mesh, timeout: float = 30) -> None:
    """Until the gateway has answered from both replicas."""
    seen: set[str] = set()

    def check() -> bool:
        status, body = mesh.get(mesh.gateway_url("/"))
        if status == 200:
            seen.add(body.split(" pid ")[0])
        return len(seen) >= 2

    wait_for(check, timeout=timeout, interval=0.02, what="both replicas answering")


@pytest.fixture
def hello_mesh_files() -> dict[str, str]:
    """The mesh directory's files: Service, Gateway, VirtualService, Workload, the app."""
    return {"hello.yaml": SERVICE_YAML, "workload.yaml": workload_yaml(), "app.py": APP.read_text()}


@pytest.fixture
def hello_mesh(make_mesh: Any, hello_mesh_files: dict[str, str]) -> Mesh:
    """A started mesh: Service, Gateway, VirtualService and 2 replicas of `hello-v1`."""
    mesh: Mesh = make_mesh(hello_mesh_files)
    wait_status(mesh, mesh.gateway_url("/"))
    wait_both_replicas(mesh)
    return mesh


def gateway_admin(mesh: Mesh) -> str:
    return f"http://127.0.0.1:{mesh.run_info()['gateways'][0]['admin_port']}"


def endpoint_health_flags(admin: str, cluster_prefix: str) -> dict[str, str]:
    """`host:port → health_flags` of one Envoy's clusters whose name starts with a prefix."""
    status, body, _ = http_get(f"{admin}/clusters")
    assert status == 200, body
    flags: dict[str, str] = {}
    for line in body.splitlines():
        parts = line.split("::")
        if len(parts) == 4 and parts[0].startswith(cluster_prefix) and parts[2] == "health_flags":
            flags[parts[1]] = parts[3]
    return flags


def failure_stats(mesh: Mesh) -> str:
    """The gateway's non-zero counters that explain a failed request (503 and friends)."""
    _, body, _ = http_get(f"{gateway_admin(mesh)}/stats")
    keys = ("no_cluster", "no_route", "none_healthy", "cx_connect_fail", "rq_retry",
            "warming", "overflow", "upstream_rq_503", "rq_maintenance", "rq_reset",
            "cx_destroy_remote_with_active_rq", "rq_timeout", "rq_pending_failure_eject",
            "rq_tx_reset", "rq_rx_reset")
    lines = [ln for ln in body.splitlines() if any(k in ln for k in keys)]
    return "\n".join(ln for ln in lines if not ln.endswith(": 0"))


ROUND_ROBIN_YAML = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hello}
spec:
  host: hello
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
"""


def balance_round_robin(mesh: Mesh) -> None:
    """Balance `hello` round robin, and wait until the gateway does.

    Under Istio's default, LEAST_REQUEST (power of two choices), a replica that fails fast
    (connection refused, or its sidecar's instant 503) always has the fewest active
    requests, so a retry picks it again with probability up to (3/4)^6 despite the
    previous-hosts predicate and its 5 re-picks: with Istio's 2 retries about 3 % of the
    requests that meet it fail, in Istio too. Round robin makes "retried on the other
    replica" deterministic, which is what the crash tests check.
    """
    mesh.apply_ok(ROUND_ROBIN_YAML, "round-robin.yaml")
    wait_for(lambda: _gateway_balances_round_robin(mesh), timeout=20, what="round robin")


def _gateway_balances_round_robin(mesh: Mesh) -> bool:
    _, body, _ = http_get(f"{gateway_admin(mesh)}/config_dump?resource=dynamic_active_clusters")
    for entry in json.loads(body).get("configs", []):
        cluster = entry.get("cluster", {})
        if cluster.get("name", "").startswith("outbound|8000||hello."):
            # ROUND_ROBIN is the enum's zero value: the JSON dump leaves it out.
            return bool(cluster.get("lb_policy", "ROUND_ROBIN") == "ROUND_ROBIN")
    return False
