"""proxy-config, proxy-status, status and version through click, against the API stub."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

from click.testing import CliRunner
from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import json_format

from ratline.cli.inspect_commands import proxy_config, proxy_status, status, version
from ratline.registry.instances import InstancePort, SidecarPorts, WorkloadInstance
from ratline.settings import state_dir
from tests.cli.conftest import StubApi

NODE = "sidecar~127.0.0.1~reviews-v2-0.default~default.svc.cluster.local"


def reviews_instance() -> WorkloadInstance:
    return WorkloadInstance(
        name="reviews-v2-0",
        namespace="default",
        workload="reviews-v2",
        ports=(InstancePort(9080, 41000, 41001, "http"),),
        sidecar=SidecarPorts(outbound_port=41002, admin_port=41003),
        app_pid=100,
        proxy_pid=101,
    )


def serve_mesh(stub_api: StubApi) -> None:
    state = {"state": "SYNCED", "sent_version": "3", "acked_version": "3", "nack": None}
    stub_api.answers[("GET", "/v1/proxy-status")] = (
        200,
        {"proxies": [{"node": NODE, "instance": "reviews-v2-0", "namespace": "default",
                      "connected": True, "xds": "sotw",
                      "types": {t: state for t in ("CDS", "LDS", "EDS", "RDS")}}]},
    )  # fmt: skip
    stub_api.answers[("GET", "/v1/instances")] = (
        200,
        {"instances": [reviews_instance().to_json()]},
    )
    cluster = cluster_pb2.Cluster(
        name="outbound|9080|v1|ratings.default.svc.cluster.local", type=cluster_pb2.Cluster.EDS
    )
    stub_api.answers[("GET", "/v1/config-dump")] = (
        200,
        {
            "node": NODE,
            "type": "CDS",
            "version": "3",
            "resources": [json_format.MessageToDict(cluster, preserving_proto_field_name=True)],
        },
    )
    stub_api.answers[("GET", "/v1/status")] = (
        200,
        {"pid": 1, "xds": "127.0.0.1:2", "admin": "127.0.0.1:3", "mesh_dir": "/m",
         "snapshot_version": "3", "config_version": "1", "proxies": 1, "version": "0.1.0"},
    )  # fmt: skip


def test_proxy_config_clusters_of_a_workload(stub_api: StubApi, mesh_dir: Path) -> None:
    serve_mesh(stub_api)
    result = CliRunner().invoke(proxy_config, ["clusters", "reviews-v2", "--mesh", str(mesh_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "SERVICE FQDN                       PORT  SUBSET  DIRECTION  TYPE",
        "ratings.default.svc.cluster.local  9080  v1      outbound   EDS",
    ]
    path, _, query = stub_api.requests[-1][1].partition("?")
    assert path == "/v1/config-dump"
    assert urllib.parse.parse_qs(query) == {"node": [NODE], "type": ["CDS"]}


def test_proxy_config_json_prints_the_raw_resources(stub_api: StubApi, mesh_dir: Path) -> None:
    serve_mesh(stub_api)
    result = CliRunner().invoke(
        proxy_config, ["clusters", "reviews-v2-0.default", "-o", "json", "--mesh", str(mesh_dir)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["name"].startswith("outbound|9080|v1|ratings")


def test_proxy_config_of_an_unknown_target(stub_api: StubApi, mesh_dir: Path) -> None:
    serve_mesh(stub_api)
    result = CliRunner().invoke(proxy_config, ["routes", "nope", "--mesh", str(mesh_dir)])
    assert result.exit_code == 1
    assert "no proxy or workload named 'nope'; proxies: reviews-v2-0.default" in result.stderr


def test_proxy_status_table(stub_api: StubApi, mesh_dir: Path) -> None:
    serve_mesh(stub_api)
    result = CliRunner().invoke(proxy_status, ["--mesh", str(mesh_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "NAME                  CDS     LDS     EDS     RDS     XDS   VERSION",
        "reviews-v2-0.default  SYNCED  SYNCED  SYNCED  SYNCED  sotw  3",
    ]


def test_status_combines_run_json_and_the_control_plane(stub_api: StubApi, mesh_dir: Path) -> None:
    serve_mesh(stub_api)
    run_file = state_dir(mesh_dir) / "run.json"
    run_info = json.loads(run_file.read_text())
    run_info.update(runner_pid=9, instances=[reviews_instance().to_json()])
    run_file.write_text(json.dumps(run_info))
    result = CliRunner().invoke(status, ["--mesh", str(mesh_dir)])
    assert result.exit_code == 0, result.output
    assert "Control plane: PID 1, xDS 127.0.0.1:2" in result.stdout
    assert "reviews-v2-0.default  100" in result.stdout
    result = CliRunner().invoke(status, ["--mesh", str(mesh_dir), "-o", "json"])
    assert json.loads(result.stdout)["control_plane"]["pid"] == 1


def test_version_with_and_without_a_mesh(stub_api: StubApi, mesh_dir: Path, tmp_path: Path) -> None:
    serve_mesh(stub_api)
    result = CliRunner().invoke(version, ["--mesh", str(mesh_dir)])
    assert result.stdout.splitlines() == ["client version: 0.1.0", "control plane version: 0.1.0"]
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(version, ["--mesh", str(empty), "-o", "json"])
    assert json.loads(result.stdout) == {"client": "0.1.0", "control_plane": None}
