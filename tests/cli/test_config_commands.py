"""`ratline analyze` through click on real files, and apply/delete answer formatting."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ratline.api.kinds import type_name
from ratline.cli.config_commands import (
    analyze,
    apply_lines,
    delete_lines,
    parse_resource_ref,
    read_inputs,
    resource_type_name,
)

REPO = Path(__file__).resolve().parents[2]
BOOKINFO = REPO / "examples" / "bookinfo"
SAMPLES = REPO / "examples" / "bookinfo-samples"


def run_analyze(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(analyze, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_the_bookinfo_mesh_has_no_issues() -> None:
    code, out = run_analyze(str(BOOKINFO))
    assert code == 0, out
    assert out == f"✔ No validation issues found when analyzing {BOOKINFO}.\n"


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("virtual-service-*")))
def test_each_istio_task_sample_is_clean_against_bookinfo(sample: str) -> None:
    code, out = run_analyze(str(BOOKINFO), str(SAMPLES / sample))
    assert code == 0, out


def test_the_bad_sample_fails_with_schema_and_analyzer_errors() -> None:
    bad = SAMPLES / "bad-virtual-service.yaml"
    code, out = run_analyze(str(BOOKINFO), str(bad))
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"Error {bad}: document 1, VirtualService default/reviews: "
        "spec.http[0].route[0].weight: must be 0..100"
    )
    assert any(
        line.startswith(f"Error [IST0101] {bad}: document 2, VirtualService default/ratings")
        and "subset 'v4'" in line
        for line in lines
    ), out


def test_json_output_carries_every_message_and_the_exit_status() -> None:
    code, out = run_analyze(str(SAMPLES / "bad-virtual-service.yaml"), "-o", "json")
    assert code == 1
    messages = json.loads(out)["messages"]
    assert {m["field"] for m in messages} >= {
        "spec.http[0].route[0].weight",
        "spec.http[0].route[1].weight",
    }
    assert all(m["severity"] == "error" for m in messages)


def test_warnings_alone_exit_zero(tmp_path: Path) -> None:
    (tmp_path / "dr.yaml").write_text(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        "metadata: {name: ghost}\nspec: {host: ghost}\n"
    )
    code, out = run_analyze(str(tmp_path))
    assert code == 0, out
    assert out.startswith("Warning [IST0101] ")
    assert "ghost" in out


def test_a_later_file_overrides_the_directory(tmp_path: Path) -> None:
    mesh = tmp_path / "mesh"
    shutil.copytree(BOOKINFO, mesh, ignore=shutil.ignore_patterns("apps", "*.md"))
    (mesh / "reviews-vs.yaml").write_text(
        (SAMPLES / "virtual-service-reviews-v3.yaml").read_text().replace("v3", "v9")
    )
    code, out = run_analyze(str(mesh))
    assert code == 1 and "subset 'v9'" in out
    # The same VirtualService from a file given after the directory replaces it.
    code, out = run_analyze(str(mesh), str(SAMPLES / "virtual-service-reviews-v3.yaml"))
    assert "subset 'v9'" not in out


def test_unreadable_yaml_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    code, out = run_analyze(str(bad))
    assert code == 1
    assert "invalid YAML" in out


def test_resource_type_names_follow_kubectl() -> None:
    assert type_name("VirtualService") == "virtualservice.networking.istio.io"
    assert type_name("AuthorizationPolicy") == "authorizationpolicy.security.istio.io"
    assert type_name("Service") == "service"
    assert type_name("Workload") == "workload.ratline.dev"
    answer = {"types": {"VirtualService default/reviews": "virtualservice.networking.istio.io"}}
    assert resource_type_name("VirtualService default/reviews", answer) == (
        "virtualservice.networking.istio.io"
    )
    assert resource_type_name("Service default/x", answer) == "service"
    assert parse_resource_ref("VirtualService default/reviews") == (
        "VirtualService",
        "default",
        "reviews",
    )


def test_apply_lines_say_created_configured_or_unchanged() -> None:
    refs = {
        "VirtualService default/reviews": "virtualservice.networking.istio.io",
        "DestinationRule default/ratings": "destinationrule.networking.istio.io",
        "Gateway default/bookinfo-gateway": "gateway.networking.istio.io",
    }
    answer = {
        "created": ["DestinationRule default/ratings"],
        "configured": ["VirtualService default/reviews"],
        "unchanged": ["Gateway default/bookinfo-gateway"],
        "types": refs,
        "warnings": [],
    }
    assert apply_lines(answer) == [
        "destinationrule.networking.istio.io/ratings created",
        "virtualservice.networking.istio.io/reviews configured",
        "gateway.networking.istio.io/bookinfo-gateway unchanged",
    ]


def test_delete_lines() -> None:
    deleted, missing = delete_lines(
        {
            "deleted": ["VirtualService default/reviews"],
            "not_found": ["VirtualService x/gone"],
            "types": {
                "VirtualService default/reviews": "virtualservice.networking.istio.io",
                "VirtualService x/gone": "virtualservice.networking.istio.io",
            },
        }
    )
    assert deleted == ['virtualservice.networking.istio.io "reviews" deleted']
    assert missing == ['virtualservice.networking.istio.io "gone" not found in namespace x']


def test_read_inputs_expands_directories_and_refuses_missing_files(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("b")
    (tmp_path / "a.yml").write_text("a")
    (tmp_path / "notes.txt").write_text("n")
    assert read_inputs([str(tmp_path)]) == [
        (str(tmp_path / "a.yml"), "a"),
        (str(tmp_path / "b.yaml"), "b"),
    ]
    with pytest.raises(click.ClickException, match="no such file"):
        read_inputs([str(tmp_path / "missing.yaml")])
