"""The admin API client and the apply/delete commands' handling of answers and errors.

The `stub_api` fixture (conftest) stands in for the control plane's admin API with canned
answers in the documented shapes; end-to-end tests against the real control plane live
in tests/e2e.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ratline.cli.admin_client import AdminApiError, AdminClient
from ratline.cli.config_commands import apply, delete
from tests.cli.conftest import StubApi

REFUSED = {
    "severity": "error",
    "code": "",
    "file": "vs.yaml",
    "document": 1,
    "resource": "VirtualService default/reviews",
    "field": "spec.http[0].route[0].weight",
    "message": "must be 0..100",
    "text": "vs.yaml: document 1, VirtualService default/reviews: "
    "spec.http[0].route[0].weight: must be 0..100",
}


def test_get_with_query(stub_api: StubApi) -> None:
    stub_api.answers[("GET", "/v1/config-dump")] = (200, {"resources": [1]})
    answer = AdminClient(stub_api.url).get("/v1/config-dump", {"node": "a~b", "type": "CDS"})
    assert answer == {"resources": [1]}
    assert stub_api.requests[-1][1] == "/v1/config-dump?node=a~b&type=CDS"


def test_an_error_answer_carries_its_messages(stub_api: StubApi) -> None:
    stub_api.answers[("POST", "/v1/apply")] = (400, {"errors": [REFUSED]})
    with pytest.raises(AdminApiError) as caught:
        AdminClient(stub_api.url).post("/v1/apply", b"x")
    assert caught.value.status == 400
    assert caught.value.messages == [REFUSED]


def test_an_unreachable_control_plane_is_a_clear_error() -> None:
    with pytest.raises(click.ClickException, match="cannot reach the control plane"):
        AdminClient("http://127.0.0.1:1", timeout_s=2).get("/healthz")


def test_apply_prints_kubectl_lines_and_warnings(
    stub_api: StubApi, mesh_dir: Path, tmp_path: Path
) -> None:
    warning = {**REFUSED, "severity": "warning", "code": "RL0101", "text": "warning: w.yaml: w"}
    stub_api.answers[("GET", "/v1/resources")] = (
        200,
        {"config_version": "1", "resources": [
            {"kind": "VirtualService", "namespace": "default", "name": "reviews"}]},
    )  # fmt: skip
    stub_api.answers[("POST", "/v1/apply")] = (
        200,
        {
            "created": ["DestinationRule default/reviews"],
            "configured": ["VirtualService default/reviews"],
            "unchanged": [],
            "types": {
                "VirtualService default/reviews": "virtualservice.networking.istio.io",
                "DestinationRule default/reviews": "destinationrule.networking.istio.io",
            },
            "warnings": [warning],
        },
    )
    file = tmp_path / "vs.yaml"
    file.write_text("kind: VirtualService\n")
    result = CliRunner().invoke(apply, ["-f", str(file), "--mesh", str(mesh_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "destinationrule.networking.istio.io/reviews created",
        "virtualservice.networking.istio.io/reviews configured",
    ]
    assert result.stderr == "Warning [RL0101] w.yaml: w\n"
    method, path, headers, body = stub_api.requests[-1]
    assert (method, path, body) == ("POST", "/v1/apply", b"kind: VirtualService\n")
    assert headers["X-Ratline-Filename"] == str(file)


def test_apply_from_stdin_and_a_refused_file(stub_api: StubApi, mesh_dir: Path) -> None:
    stub_api.answers[("GET", "/v1/resources")] = (200, {"resources": []})
    stub_api.answers[("POST", "/v1/apply")] = (400, {"errors": [REFUSED]})
    result = CliRunner().invoke(apply, ["-f", "-", "--mesh", str(mesh_dir)], input="a: b\n")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == REFUSED["text"] + "\n"
    assert stub_api.requests[-1][2]["X-Ratline-Filename"] == "<stdin>"


def test_delete_reports_deleted_and_not_found(
    stub_api: StubApi, mesh_dir: Path, tmp_path: Path
) -> None:
    stub_api.answers[("POST", "/v1/delete")] = (
        200,
        {
            "deleted": ["VirtualService default/reviews"],
            "not_found": ["Gateway default/gw"],
            "types": {
                "VirtualService default/reviews": "virtualservice.networking.istio.io",
                "Gateway default/gw": "gateway.networking.istio.io",
            },
        },
    )
    file = tmp_path / "vs.yaml"
    file.write_text("kind: VirtualService\n")
    runner = CliRunner()
    result = runner.invoke(delete, ["-f", str(file), "--mesh", str(mesh_dir)])
    assert result.exit_code == 1
    assert result.stdout == 'virtualservice.networking.istio.io "reviews" deleted\n'
    assert 'gateway.networking.istio.io "gw" not found' in result.stderr
    result = runner.invoke(delete, ["-f", str(file), "--ignore-not-found", "--mesh", str(mesh_dir)])
    assert result.exit_code == 0


def test_delete_of_directory_config_is_refused(
    stub_api: StubApi, mesh_dir: Path, tmp_path: Path
) -> None:
    conflict = {**REFUSED, "text": "VirtualService default/reviews comes from the mesh directory"}
    stub_api.answers[("POST", "/v1/delete")] = (409, {"errors": [conflict]})
    file = tmp_path / "vs.yaml"
    file.write_text("kind: VirtualService\n")
    result = CliRunner().invoke(delete, ["-f", str(file), "--mesh", str(mesh_dir)])
    assert result.exit_code == 1
    assert "comes from the mesh directory" in result.stderr


def test_no_running_mesh_is_explained(tmp_path: Path) -> None:
    file = tmp_path / "vs.yaml"
    file.write_text("kind: VirtualService\n")
    result = CliRunner().invoke(apply, ["-f", str(file), "--mesh", str(tmp_path)])
    assert result.exit_code == 1
    assert "no running mesh" in result.stderr
