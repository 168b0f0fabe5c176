"""`ratline up -d` / `ratline down` on a real mesh: an app behind its sidecar and the gateway.

One Service + Workload (a tiny Python HTTP app honouring PORT). The app answers through
its sidecar's inbound listener and through the ingress gateway; a killed app is
restarted with a new PID and answers again; `ratline down` leaves no process behind.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import Mesh, wait_status
from tests.e2e.hello_mesh import HELLO_APP, MESH_YAML
from tests.helpers import kill_pids, pid_alive, wait_for

pytestmark = pytest.mark.e2e

APP = HELLO_APP


def _instance(mesh: Mesh, name: str) -> dict[str, Any]:
    return next(i for i in mesh.run_info()["instances"] if i["name"] == name)


def test_up_serves_restarts_and_down_leaves_nothing(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh({"hello.yaml": MESH_YAML, "hello_app.py": APP.read_text()})
    try:
        info = mesh.run_info()
        assert info["ready"] and info["control_plane"]["pid"]
        gateway_port = int(mesh.env["RATLINE_GATEWAY_PORT_OFFSET"]) + 80
        assert info["gateways"][0]["listen"] == [gateway_port]
        inst = _instance(mesh, "hello-v1-0")
        inbound = inst["ports"][0]["inbound_port"]

        # Through the sidecar's inbound listener, and through the ingress gateway.
        body = wait_status(mesh, f"http://127.0.0.1:{inbound}/")
        assert body.startswith("hello from hello-v1-0")
        assert wait_status(mesh, mesh.gateway_url("/")).startswith("hello from hello-v1-0")

        # A killed app comes back with a new PID and answers again.
        old_pid = _instance(mesh, "hello-v1-0")["app_pid"]
        kill_pids([old_pid], timeout=0)
        restarted = wait_for(
            lambda: (
                (i := _instance(mesh, "hello-v1-0"))["app_pid"] not in (None, old_pid)
                and i["healthy"]
                and i
            ),
            timeout=30,
            what="the app restarted",
        )
        assert restarted["restarts"] >= 1
        body = wait_status(mesh, f"http://127.0.0.1:{inbound}/")
        assert f"pid {restarted['app_pid']}" in body
    finally:
        pids = set(mesh.seen_pids)
        mesh.ratline("down", "--mesh", str(mesh.dir), timeout=90)

    assert not (mesh.dir / ".ratline" / "run.json").exists()
    alive = [p for p in pids if pid_alive(p)]
    assert not alive, f"still running after `ratline down`: {alive}"


def test_up_refuses_a_second_runner_and_down_without_mesh(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh({"hello.yaml": MESH_YAML, "hello_app.py": APP.read_text()})
    runner_pid = mesh.run_info()["runner_pid"]
    again = mesh.ratline("up", "-d", str(mesh.dir), check=False)
    assert again.returncode != 0
    assert f"already running in {mesh.dir}" in again.stderr and str(runner_pid) in again.stderr
    mesh.ratline("down", "--mesh", str(mesh.dir), timeout=90)
    nothing = mesh.ratline("down", "--mesh", str(mesh.dir))
    assert "no mesh is running" in nothing.stderr
