"""Pure parts of an instance: command resolution, the app's environment, its report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ratline.registry.instances import ProxyKind, WorkloadInstance
from ratline.runtime.local.instances import (
    AllocatedPorts,
    CommandNotFound,
    InstanceDirs,
    LocalInstance,
    app_environment,
    port_env_name,
    resolve_command,
)
from ratline.runtime.local.supervisor import RestartPolicy
from ratline.runtime.local.workloads import desired_instances
from ratline.settings import Settings


def _spec(**spec: object):  # type: ignore[no-untyped-def]
    doc = {
        "kind": "Workload",
        "metadata": {"name": "reviews-v2", "namespace": "shop", "labels": {"app": "reviews"}},
        "spec": {
            "command": ["python3", "app.py"],
            "serviceAccount": "bookinfo-reviews",
            "ports": [
                {"name": "http", "containerPort": 9080},
                {"name": "http-metrics", "containerPort": 15020},
            ],
            **spec,
        },
    }
    return desired_instances([doc])[0][("shop", "reviews-v2-0")]


PORTS = AllocatedPorts(app=(40001, 40002), inbound=(40003, 40004), outbound=40005, admin=40006)


def test_command_relative_to_the_mesh_dir_wins(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "serve").write_text("#!/bin/sh\n")
    assert resolve_command(("bin/serve", "-v"), tmp_path) == [str(tmp_path / "bin/serve"), "-v"]


def test_command_falls_back_to_path(tmp_path: Path) -> None:
    found = resolve_command((Path(sys.executable).name, "app.py"), tmp_path)
    assert Path(found[0]).is_absolute() and found[1:] == ["app.py"]


def test_missing_command_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommandNotFound, match="no-such-program"):
        resolve_command(("no-such-program",), tmp_path)
    with pytest.raises(CommandNotFound, match="command not found"):
        resolve_command(("/nonexistent/bin/x",), tmp_path)


def test_port_env_names() -> None:
    assert port_env_name("http") == "PORT_HTTP"
    assert port_env_name("http-metrics") == "PORT_HTTP_METRICS"


def test_app_environment() -> None:
    env = app_environment(_spec(env={"GREETING": "hi", "PORT": "1"}), PORTS, {"HOME": "/h"})
    assert env["HOME"] == "/h" and env["GREETING"] == "hi"
    assert env["PORT"] == "40001"
    assert env["PORT_HTTP"] == "40001" and env["PORT_HTTP_METRICS"] == "40002"
    assert env["HTTP_PROXY"] == env["http_proxy"] == "http://127.0.0.1:40005"
    assert env["NO_PROXY"] == env["no_proxy"] == "127.0.0.1,localhost"
    assert env["RATLINE_INSTANCE"] == "reviews-v2-0"
    assert env["RATLINE_NAMESPACE"] == "shop"
    assert env["RATLINE_SERVICE_ACCOUNT"] == "bookinfo-reviews"


async def test_report_before_start_names_ports_and_is_unhealthy(tmp_path: Path) -> None:
    inst = LocalInstance(
        _spec(),
        PORTS,
        dirs=InstanceDirs(tmp_path, tmp_path / "proxies", tmp_path / "logs"),
        xds=("127.0.0.1", 15010),
        settings=Settings(),
        policy=RestartPolicy(),
        on_change=lambda: None,
    )
    reported = inst.to_workload_instance()
    assert reported.node_id == "sidecar~127.0.0.1~reviews-v2-0.shop~shop.svc.cluster.local"
    assert reported.kind is ProxyKind.SIDECAR and not reported.healthy
    assert [(p.container_port, p.app_port, p.inbound_port) for p in reported.ports] == [
        (9080, 40001, 40003),
        (15020, 40002, 40004),
    ]
    assert reported.sidecar is not None and reported.sidecar.outbound_port == 40005
    assert WorkloadInstance.from_json(reported.to_json()) == reported
    info = inst.run_info()
    assert info["app_pid"] is None and info["restarts"] == 0 and info["healthy"] is False
