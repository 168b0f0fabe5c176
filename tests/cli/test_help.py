"""`ratline --help` tells a new user how to start, with an example that exists."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ratline.cli.main import _COMMAND_MODULES, cli

REPO = Path(__file__).resolve().parents[2]


def test_help_says_how_to_start_and_lists_every_command() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "ratline up examples/bookinfo" in result.output
    assert "http://localhost:8080/productpage" in result.output
    assert "Workload" in result.output and "RATLINE_ENVOY" in result.output
    assert (REPO / "examples" / "bookinfo").is_dir()
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].splitlines()
              if line.strip()]
    assert listed == list(_COMMAND_MODULES)
    commands = result.output.split("Commands:")[1]
    assert not any(line.rstrip().endswith("...") for line in commands.splitlines())
