"""The runner with real Envoys and apps against a stand-in control plane.

`tests.runtime.fake_controlplane` serves Workloads from a JSON file and empty xDS, so this
tests the runner's own job: ports, sidecar-before-app, restarts with backoff, reporting,
run.json, the control plane's restart on the same ports, and a clean stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ratline.runtime.local.runfile import MeshAlreadyRunning, pids_in_run_info, read_run_file
from ratline.runtime.local.runner import Runner
from ratline.settings import Settings
from tests.helpers import http_get, kill_pids, pid_alive

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
APP = Path(__file__).parent / "fixtures" / "hello_app.py"
FAKE_CP = "tests.runtime.fake_controlplane"
SETTINGS = Settings(
    restart_backoff_initial_s=0.1, restart_backoff_max_s=1.0, ready_timeout_s=20, prometheus="off"
)


def workload(
    name: str, replicas: int = 1, command: list[str] | None = None, **spec: Any
) -> dict[str, Any]:
    return {
        "kind": "Workload",
        "namespace": "default",
        "name": name,
        "resource": {
            "apiVersion": "ratline.dev/v1alpha1",
            "kind": "Workload",
            "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "command": command or [sys.executable, "hello_app.py"],
                "serviceAccount": "hello-sa",
                "env": {"GREETING": "hi"},
                "ports": [{"name": "http", "containerPort": 8000}],
                **spec,
            },
        },
    }


class Mesh:
    def __init__(self, mesh_dir: Path) -> None:
        self.dir = mesh_dir
        self.seen: set[int] = set()

    def set_resources(self, *resources: dict[str, Any]) -> None:
        tmp = self.dir / "resources.tmp"
        tmp.write_text(json.dumps(list(resources)))
        os.replace(tmp, self.dir / "resources.json")

    def info(self) -> dict[str, Any]:
        data = read_run_file(self.dir) or {}
        self.seen.update(pids_in_run_info(data))
        return data

    def instance(self, name: str) -> dict[str, Any] | None:
        return next((i for i in self.info().get("instances", []) if i["name"] == name), None)

    def reported(self) -> dict[str, Any]:
        path = self.dir / "reported.json"
        return json.loads(path.read_text()) if path.exists() else {}

    async def until(self, condition: Callable[[], Any], what: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; run.json: {self.info()}")


@pytest.fixture
def mesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Mesh]:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    mesh_dir = tmp_path / "mesh"
    mesh_dir.mkdir()
    (mesh_dir / "hello_app.py").write_text(APP.read_text())
    m = Mesh(mesh_dir)
    yield m
    m.info()
    kill_pids(m.seen - {os.getpid()})


def start(mesh: Mesh) -> tuple[Runner, asyncio.Task[int]]:
    runner = Runner(mesh.dir, SETTINGS, controlplane_module=FAKE_CP)
    return runner, asyncio.create_task(runner.run())


def healthy_app(mesh: Mesh, name: str, not_pid: int | None = None) -> dict[str, Any] | None:
    inst = mesh.instance(name)
    if inst and inst["healthy"] and inst["app_pid"] and inst["app_pid"] != not_pid:
        return inst
    return None


async def get(url: str) -> tuple[int, str]:
    status, body, _ = await asyncio.to_thread(http_get, url)
    return status, body


async def test_runner_runs_restarts_reports_and_stops(mesh: Mesh) -> None:
    mesh.set_resources(workload("hello", replicas=2))
    runner, task = start(mesh)
    try:
        info = await mesh.until(lambda: mesh.info().get("ready") and mesh.info(), "mesh ready")
        assert info["runner_pid"] == os.getpid() and info["mesh_dir"] == str(mesh.dir)
        assert [i["name"] for i in info["instances"]] == ["hello-0", "hello-1"]
        gateway = info["gateways"][0]
        assert gateway["name"] == "istio-ingressgateway-0" and pid_alive(gateway["pid"])

        first = await mesh.until(lambda: healthy_app(mesh, "hello-0"), "hello-0 healthy")
        await mesh.until(lambda: healthy_app(mesh, "hello-1"), "hello-1 healthy")
        app_port = first["ports"][0]["app_port"]
        status, body = await get(f"http://127.0.0.1:{app_port}/env")
        env = json.loads(body)
        assert status == 200
        assert env["PORT"] == str(app_port)
        assert env["HTTP_PROXY"] == f"http://127.0.0.1:{first['sidecar']['outbound_port']}"
        assert env["RATLINE_INSTANCE"] == "hello-0" and env["GREETING"] == "hi"
        assert env["RATLINE_SERVICE_ACCOUNT"] == "hello-sa"
        # Every port handed out is distinct.
        ports = [
            p
            for i in mesh.info()["instances"]
            for p in [
                *(x["app_port"] for x in i["ports"]),
                *(x["inbound_port"] for x in i["ports"]),
                i["sidecar"]["outbound_port"],
                i["sidecar"]["admin_port"],
            ]
        ]
        ports += [gateway["admin_port"]]
        assert len(ports) == len(set(ports))

        # The registry got every instance, healthy, and the gateway as a router.
        def reported_healthy() -> dict[str, Any] | None:
            rep = mesh.reported()
            insts = {i["name"]: i for i in rep.get("instances", [])}
            ok = len(insts) == 3 and all(i["healthy"] for i in insts.values())
            return insts if ok else None

        reported = await mesh.until(reported_healthy, "instances reported healthy")
        assert reported["istio-ingressgateway-0"]["kind"] == "router"
        assert reported["istio-ingressgateway-0"]["namespace"] == "istio-system"
        assert reported["hello-0"]["labels"] == {"app": "hello"}
        assert reported["hello-0"]["ports"][0]["container_port"] == 8000

        # A killed app is restarted and answers again.
        os.kill(first["app_pid"], signal.SIGKILL)
        again = await mesh.until(
            lambda: healthy_app(mesh, "hello-0", not_pid=first["app_pid"]), "app restarted"
        )
        assert again["restarts"] == 1 and again["proxy_pid"] == first["proxy_pid"]
        assert (await get(f"http://127.0.0.1:{app_port}/"))[1].startswith("hello from hello-0")

        # A killed sidecar is restarted on the same ports; the app keeps running.
        os.kill(again["proxy_pid"], signal.SIGKILL)
        sidecar = await mesh.until(
            lambda: (
                (i := mesh.instance("hello-0"))
                and i["sidecar_ready"]
                and i["proxy_pid"] not in (None, again["proxy_pid"])
                and i
            ),
            "sidecar restarted",
        )
        assert sidecar["app_pid"] == again["app_pid"]
        assert sidecar["sidecar"] == again["sidecar"]

        # A killed control plane comes back on the same ports and gets every instance again.
        cp = mesh.info()["control_plane"]
        os.kill(cp["pid"], signal.SIGKILL)
        new_cp = await mesh.until(
            lambda: (c := mesh.info().get("control_plane")) and c["pid"] != cp["pid"] and c,
            "control plane restarted",
        )
        assert (new_cp["xds"], new_cp["admin"]) == (cp["xds"], cp["admin"])
        await mesh.until(lambda: mesh.reported().get("pid") == new_cp["pid"], "re-reported")

        # Scale down and add a Workload whose command does not exist.
        old_1 = mesh.instance("hello-1")
        assert old_1 is not None
        mesh.set_resources(
            workload("hello", replicas=1), workload("broken", command=["no-such-program"])
        )
        broken = await mesh.until(
            lambda: (b := mesh.instance("broken-0")) and b["error"] and b, "broken reported"
        )
        assert "command not found" in broken["error"] and not broken["healthy"]
        await mesh.until(lambda: mesh.instance("hello-1") is None, "hello-1 stopped")
        assert not pid_alive(old_1["app_pid"]) and not pid_alive(old_1["proxy_pid"])
        assert mesh.instance("hello-0")["app_pid"] == again["app_pid"]  # type: ignore[index]
    finally:
        seen = set(mesh.seen)
        runner.request_stop()
        code = await asyncio.wait_for(task, 60)
    assert code == 0
    assert read_run_file(mesh.dir) is None
    alive = [p for p in seen - {os.getpid()} if pid_alive(p)]
    assert not alive, f"still running after stop: {alive}"


async def test_a_refusing_control_plane_stops_the_start(mesh: Mesh) -> None:
    (mesh.dir / "refuse").write_text("")
    mesh.set_resources(workload("hello"))
    _, task = start(mesh)
    assert await asyncio.wait_for(task, 30) == 1
    assert read_run_file(mesh.dir) is None
    log = (mesh.dir / ".ratline" / "logs" / "controlplane.log").read_text()
    assert "this mesh dir is invalid" in log
    assert not list((mesh.dir / ".ratline" / "logs").rglob("*.envoy.log"))


async def test_a_second_runner_is_refused(mesh: Mesh) -> None:
    # The refusal checks that the PID looks like a ratline runner (not a reused PID).
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "ratline"])
    try:
        state = mesh.dir / ".ratline"
        state.mkdir()
        (state / "run.json").write_text(json.dumps({"runner_pid": other.pid}))
        with pytest.raises(MeshAlreadyRunning, match=f"runner PID {other.pid}"):
            await Runner(mesh.dir, SETTINGS, controlplane_module=FAKE_CP).run()
    finally:
        kill_pids([other.pid])
        other.wait()
