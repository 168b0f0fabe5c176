"""What a new user meets in the first ten minutes, on a real mesh through the real CLI.

One mesh (`ratline up -d`) is shared by the read-only checks: the start-up output ends
with the ingress URL, `ratline status` shows the live control plane, `ratline logs`
shows an instance's app and sidecar output (and follows it), a Workload whose command
does not exist is named with its file and field. Tests that kill or stop a mesh get
their own: the foreground runner's NACK lines and what it leaves after Ctrl-C, reaping
after a SIGKILLed runner, ports held by another program.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mesh, mesh_env
from tests.e2e.hello_mesh import HELLO_APP, MESH_YAML, workload_yaml
from tests.helpers import free_fixed_port, http_get, kill_pids, pid_alive, wait_for

pytestmark = pytest.mark.e2e

BROKEN_YAML = workload_yaml("broken", labels={"app": "broken"}).replace(
    f"{sys.executable}, hello_app.py", "no-such-program, --serve"
)

NACK_VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hello-mesh, namespace: default}
spec:
  hosts: [hello]
  http:
  - match: [{uri: {regex: "^/(ab{1,20}c{1,20}){1,20}$"}}]
    route:
    - destination: {host: hello, port: {number: 8000}}
"""
"""Valid Istio, but Envoy refuses the regex (its RE2 program is larger than Envoy's limit of
100): every sidecar NACKs RDS."""


def _files(extra: str = "") -> dict[str, str]:
    return {"hello.yaml": MESH_YAML + extra, "hello_app.py": HELLO_APP.read_text()}


def _write_mesh(mesh_dir: Path, files: dict[str, str]) -> None:
    mesh_dir.mkdir(parents=True)
    for name, text in files.items():
        (mesh_dir / name).write_text(text)


class Output:
    """A process's merged stdout and stderr, collected by a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_line(self, fragment: str, timeout: float = 30) -> str:
        return wait_for(
            lambda: next((ln for ln in self.lines if fragment in ln), None),
            timeout=timeout,
            what=f"a line with {fragment!r}; so far:\n{self.text()}",
        )


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mesh, str]]:
    """A mesh with `hello-v1` and a Workload whose command is missing; `up -d`'s stdout."""
    mesh_dir = tmp_path_factory.mktemp("first") / "mesh"
    _write_mesh(mesh_dir, _files("---\n" + BROKEN_YAML))
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    try:
        out = mesh.ratline("up", "-d", str(mesh_dir), timeout=120).stdout
        mesh.run_info()
        yield mesh, out
    finally:
        mesh.down()


def test_up_ends_with_the_ingress_url_that_answers(started: tuple[Mesh, str]) -> None:
    mesh, out = started
    port = int(mesh.env["RATLINE_GATEWAY_PORT_OFFSET"]) + 80
    last = out.rstrip("\n").splitlines()[-1]
    assert last == f"ready: ingress http://localhost:{port}/", out
    status, body, _ = http_get(last.split()[-1])
    assert status == 200 and body.startswith("hello from hello-v1-0"), (status, body)


def test_a_missing_command_names_the_workload_its_file_and_the_field(
    started: tuple[Mesh, str],
) -> None:
    mesh, out = started
    wanted = (
        "broken-0: Workload default/broken (hello.yaml): spec.command[0]: command not found: "
        f"'no-such-program' (neither a file in {mesh.dir} nor a program on PATH)"
    )
    assert wanted in out, out
    status = mesh.ratline("status", "--mesh", str(mesh.dir)).stdout
    assert "spec.command[0]" in status and "no-such-program" in status, status


def test_status_shows_the_live_control_plane(started: tuple[Mesh, str]) -> None:
    mesh, _ = started
    pid = mesh.run_info()["control_plane"]["pid"]
    table = mesh.ratline("status", "--mesh", str(mesh.dir)).stdout
    line = next(ln for ln in table.splitlines() if ln.startswith("Control plane:"))
    assert f"PID {pid}," in line and "snapshot" in line and "not answering" not in line, line
    data = json.loads(mesh.ratline("status", "-o", "json", "--mesh", str(mesh.dir)).stdout)
    assert data["control_plane"]["pid"] == pid and data["control_plane"]["answering"], data
    assert data["control_plane"]["proxies"] == 3  # gateway, hello-v1-0, broken-0


def test_logs_show_the_app_the_sidecar_and_say_how_to_get_access_logs(
    started: tuple[Mesh, str],
) -> None:
    mesh, _ = started
    inst = next(i for i in mesh.run_info()["instances"] if i["name"] == "hello-v1-0")
    app = mesh.ratline("logs", "hello-v1-0", "--mesh", str(mesh.dir)).stdout
    assert f"listening on {inst['ports'][0]['app_port']}" in app, app
    assert mesh.ratline("logs", "hello-v1", "--mesh", str(mesh.dir)).stdout == app
    sidecar = mesh.ratline("logs", "hello-v1-0", "--sidecar", "--mesh", str(mesh.dir)).stdout
    assert sidecar == Path(inst["proxy_log"]).read_text() and sidecar
    gateway = mesh.ratline("logs", "istio-ingressgateway", "--mesh", str(mesh.dir)).stdout
    assert gateway == Path(mesh.run_info()["gateways"][0]["log"]).read_text()
    access = mesh.ratline("logs", "hello-v1-0", "--access", "--mesh", str(mesh.dir), check=False)
    assert access.returncode == 1
    assert "no access log for hello-v1-0" in access.stderr
    assert "accessLogFile" in access.stderr and "meshConfig" in access.stderr
    broken = mesh.ratline("logs", "broken-0", "--mesh", str(mesh.dir), check=False)
    assert broken.returncode == 1 and "did not start" in broken.stderr, broken.stderr
    unknown = mesh.ratline("logs", "nope", "--mesh", str(mesh.dir), check=False)
    assert unknown.returncode == 1 and "hello-v1-0" in unknown.stderr, unknown.stderr


def test_logs_follow_shows_what_a_restarted_app_prints(started: tuple[Mesh, str]) -> None:
    mesh, _ = started
    follower = subprocess.Popen(
        [sys.executable, "-m", "ratline", "logs", "hello-v1-0", "-f", "--mesh", str(mesh.dir)],
        env=mesh.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out = Output(follower)
        before = wait_for(
            lambda: sum("listening on" in ln for ln in out.lines), timeout=20, what="the log so far"
        )
        inst = next(i for i in mesh.run_info()["instances"] if i["name"] == "hello-v1-0")
        kill_pids([inst["app_pid"]], timeout=0)
        wait_for(
            lambda: sum("listening on" in ln for ln in out.lines) > before,
            timeout=30,
            what=f"the restarted app's line; got:\n{out.text()}",
        )
    finally:
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=10)
    assert follower.returncode == 0


def test_foreground_up_shows_nacks_and_leaves_nothing_after_ctrl_c(tmp_path: Path) -> None:
    # A path too long for a Unix socket in the state dir: SDS uses a private temp dir.
    mesh_dir = tmp_path / ("m" * (110 - len(str(tmp_path))))
    _write_mesh(mesh_dir, _files())
    env = mesh_env(free_fixed_port())
    runner = subprocess.Popen(
        [sys.executable, "-m", "ratline", "up", str(mesh_dir)],
        env=env,
        cwd=mesh_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: set[int] = set()
    try:
        out = Output(runner)
        ready = out.wait_line("ready: ingress http://localhost:")
        assert out.lines.index(ready) > next(
            i for i, ln in enumerate(out.lines) if "hello-v1-0: app listening" in ln
        ), out.text()
        info = json.loads((mesh_dir / ".ratline" / "run.json").read_text())
        seen = {p["pid"] for p in info["processes"]}
        socket_dir = Path(info["sds_socket"]).parent
        assert socket_dir.is_dir() and socket_dir.name.startswith("ratline-sds-")

        nack_file = tmp_path / "nack.yaml"
        nack_file.write_text(NACK_VS)
        apply = [
            sys.executable,
            "-m",
            "ratline",
            "apply",
            "-f",
            str(nack_file),
            "--mesh",
            str(mesh_dir),
        ]
        subprocess.run(apply, env=env, check=True, capture_output=True, timeout=60)
        nack = out.wait_line("NACK hello-v1-0.default RDS: ")
        # Envoy's reason, and the resource (Envoy's RDS message does not name it).
        assert "max program size" in nack, nack
        assert nack.endswith("(in RDS resource http_proxy)"), nack
        delete = [*apply[:3], "delete", *apply[4:]]
        subprocess.run(delete, env=env, check=True, capture_output=True, timeout=60)
        out.wait_line("hello-v1-0.default accepted its RDS config again")
        assert sum("NACK hello-v1-0.default RDS" in ln for ln in out.lines) == 1, out.text()

        runner.send_signal(signal.SIGINT)
        assert runner.wait(timeout=60) == 0, out.text()
    finally:
        if runner.poll() is None:
            runner.kill()
        kill_pids(seen, timeout=5)
    state = mesh_dir / ".ratline"
    assert sorted(p.name for p in state.iterdir()) == ["admin-token", "applied", "ca", "logs"]
    assert not any((state / "applied").iterdir())
    assert not socket_dir.exists()
    assert not [p for p in seen if pid_alive(p)]


def _alive_recorded(info: dict[str, Any]) -> list[int]:
    return [p["pid"] for p in info["processes"] if p["role"] != "runner" and pid_alive(p["pid"])]


def test_after_a_sigkilled_runner_up_reaps_what_it_left_or_down_force_does(
    make_mesh: Any,
) -> None:
    mesh: Mesh = make_mesh(_files())
    first = mesh.run_info()
    os.kill(first["runner_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(first["runner_pid"]), timeout=10, what="the runner gone")
    left = _alive_recorded(first)
    assert len(left) == 4, first["processes"]  # control plane, gateway, sidecar, app
    status = mesh.ratline("status", "--mesh", str(mesh.dir))
    assert f"the runner (PID {first['runner_pid']}) is gone" in status.stderr, status.stderr

    again = mesh.ratline("up", "-d", str(mesh.dir), timeout=120)
    assert f"previous runner (PID {first['runner_pid']})" in again.stderr, again.stderr
    assert not [p for p in left if pid_alive(p)], again.stderr
    second = mesh.run_info()
    status, body, _ = http_get(mesh.gateway_url("/"))
    assert status == 200 and f"pid {second['instances'][0]['app_pid']}" in body

    # A run.json whose start times cannot be checked: up refuses, down --force stops them.
    os.kill(second["runner_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(second["runner_pid"]), timeout=10, what="the runner gone")
    for entry in second["processes"]:
        entry["start_ticks"] = None
    (mesh.dir / ".ratline" / "run.json").write_text(json.dumps(second))
    refused = mesh.ratline("up", "-d", str(mesh.dir), check=False)
    assert refused.returncode == 1 and "ratline down --force" in refused.stderr, refused.stderr
    left = _alive_recorded(second)
    assert len(left) == 4 and all(str(p) in refused.stderr for p in left), refused.stderr
    mesh.ratline("down", "--force", "--mesh", str(mesh.dir))
    assert not [p for p in left if pid_alive(p)]
    assert not (mesh.dir / ".ratline" / "run.json").exists()


def test_a_control_plane_port_held_by_another_program_names_the_holder(tmp_path: Path) -> None:
    # (A gateway port held by another program: tests/e2e/test_faults.py.)
    mesh_dir = tmp_path / "mesh"
    _write_mesh(mesh_dir, _files())
    port = free_fixed_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        env = {**mesh_env(free_fixed_port()), "RATLINE_ADMIN_PORT": str(port)}
        refused = Mesh(mesh_dir, env).ratline("up", "-d", str(mesh_dir), check=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert (
        f"port {port} (RATLINE_ADMIN_PORT) on 127.0.0.1 is in use by PID {os.getpid()} ("
    ) in refused.stderr, refused.stderr
    assert not (mesh_dir / ".ratline" / "run.json").exists()
