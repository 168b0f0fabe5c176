"""Bad input and faults at `ratline up`: each gives a clear error naming its cause.

Malformed config in the mesh directory stops `up` with the file, document and field; a
Workload whose command does not exist, or a gateway port already taken, leave the rest
of the mesh running and say what is wrong.
"""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from tests.e2e.conftest import Mesh, wait_status
from tests.e2e.test_lifecycle import APP, MESH_YAML

pytestmark = pytest.mark.e2e

MISSING_COMMAND = """\
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: ghost
  labels: {app: ghost}
spec:
  command: [./no-such-program]
  ports: [{name: http, containerPort: 8000}]
"""


def test_malformed_config_stops_up_naming_file_document_and_field(make_mesh: Any) -> None:
    bad = MESH_YAML.replace("    port: 8000", "    port: 80000")
    mesh: Mesh = make_mesh({"hello.yaml": bad, "hello_app.py": APP.read_text()}, start=False)
    proc = mesh.ratline("up", "-d", str(mesh.dir), check=False, timeout=120)
    assert proc.returncode != 0
    assert "hello.yaml: document 1, Service default/hello: spec.ports[0].port" in proc.stderr
    assert not (mesh.dir / ".ratline" / "run.json").exists()


def test_missing_command_is_reported_and_the_rest_runs(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh(
        {"hello.yaml": MESH_YAML + MISSING_COMMAND, "hello_app.py": APP.read_text()}
    )
    ghost = next(i for i in mesh.run_info()["instances"] if i["name"] == "ghost-0")
    assert "no-such-program" in (ghost.get("error") or ""), ghost
    assert not ghost["healthy"]
    assert wait_status(mesh, mesh.gateway_url("/")).startswith("hello from hello-v1-0")
    status = mesh.ratline("status", "--mesh", str(mesh.dir)).stdout
    assert "ghost-0" in status and "no-such-program" in status, status


def test_gateway_port_in_use_is_named_and_heals_once_freed(make_mesh: Any) -> None:
    mesh: Mesh = make_mesh({"hello.yaml": MESH_YAML, "hello_app.py": APP.read_text()},
                           start=False, nack_retry_max_s="2")
    port = int(mesh.env["RATLINE_GATEWAY_PORT_OFFSET"]) + 80
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        proc = mesh.ratline("up", "-d", str(mesh.dir), timeout=120)
        mesh.run_info()
        assert (
            "NACK istio-ingressgateway-0.istio-system LDS: Error adding/updating listener(s) "
            f"0.0.0.0_{port}: cannot bind '127.0.0.1:{port}': Address already in use (port "
            f"{port} is in use by PID {os.getpid()} ("
        ) in proc.stderr, proc.stderr
        # The sidecars are unaffected: the app answers through its own sidecar.
        inst = next(i for i in mesh.run_info()["instances"] if i["name"] == "hello-v1-0")
        inbound = inst["ports"][0]["inbound_port"]
        assert wait_status(mesh, f"http://127.0.0.1:{inbound}/").startswith("hello from")
    # The port is free again: the rejected listener is sent again although nothing
    # changed (no edit, no push), and the gateway serves.
    assert wait_status(mesh, mesh.gateway_url("/"), timeout=20).startswith("hello from")
    status = mesh.ratline("proxy-status", "--mesh", str(mesh.dir)).stdout
    assert "NACK" not in status.upper(), status
