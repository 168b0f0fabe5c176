"""Promise 9: sidecar lifecycle around the app.

- holdApplicationUntilProxyStarts (the default): a job's very first outbound call, made
  the instant it starts, already goes through a sidecar that has its config.
- A job (restartPolicy OnFailure) that exits 0 takes its sidecar down with it and is not
  restarted; its phase is Succeeded.
- An instance that is stopped (replicas 2 → 1) leaves the load-balancing set first, its
  sidecar drains, then the app stops, then the sidecar: no request fails meanwhile.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Mesh
from tests.helpers import pid_alive, wait_for
from tests.reliability.conftest import failure_stats, instance, workload_yaml
from tests.reliability.load import SteadyLoad

pytestmark = [pytest.mark.e2e, pytest.mark.reliability, pytest.mark.timeout(90)]

JOB_YAML = f"""\
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: job
  labels:
    app: job
spec:
  restartPolicy: OnFailure
  command: [{sys.executable}, app.py, job, "http://hello:8000/"]
"""


def test_job_calls_through_a_ready_sidecar_and_takes_it_down(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    applied = mesh.apply(JOB_YAML)
    assert applied.returncode == 0, applied.stderr
    job = wait_for(
        lambda: (
            (i := next((i for i in mesh.run_info()["instances"] if i["name"] == "job-0"), None))
            and i.get("phase") == "Succeeded"
            and i
        ),
        timeout=30,
        what="the job to succeed",
    )
    log = Path(job["log"]).read_text()
    assert "first call: 200 hello from hello-v1-" in log, log
    assert job["exit_code"] == 0 and job["proxy_pid"] is None and job["app_pid"] is None
    assert not job["sidecar_ready"]
    # Not restarted: a second look a moment later still finds it finished, run once.
    time.sleep(1.0)
    again = instance(mesh, "job-0")
    assert again["phase"] == "Succeeded" and again["restarts"] == 0
    assert Path(job["log"]).read_text().count("first call:") == 1


def test_scale_down_loses_no_request(hello_mesh: Mesh) -> None:
    mesh = hello_mesh
    leaving = instance(mesh, "hello-v1-1")
    with SteadyLoad(mesh.gateway_url("/"), rate=150, max_seconds=60) as load:
        time.sleep(1.0)
        (mesh.dir / "workload.yaml").write_text(workload_yaml(replicas=1))
        wait_for(
            lambda: all(i["name"] != "hello-v1-1" for i in mesh.run_info()["instances"]),
            timeout=20,
            what="hello-v1-1 stopped",
        )
        wait_for(lambda: not pid_alive(leaving["app_pid"]) and not pid_alive(
            leaving["proxy_pid"]), timeout=10, what="its processes gone")
        time.sleep(1.0)
    result = load.result
    print(f"\nscale down: {result.summary()}")
    assert result.failed == 0, f"{result.summary()}\n{failure_stats(mesh)}"
