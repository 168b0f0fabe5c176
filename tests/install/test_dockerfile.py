"""The Dockerfile (not built here: no image registry is reachable from CI) is checked for
what can be checked without building it: its entrypoint is the `ratline` console script
the package installs, its default command and every command the chart's containers run
are `ratline` commands that accept those arguments, and it runs as the proxy's UID."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import click

from ratline.cli.main import cli
from ratline.install.render import PROXY_UID, render
from ratline.install.values import resolve

REPO = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    lines: list[str] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append(pending + line)
        pending = ""
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def assert_command_parses(args: list[str]) -> None:
    """`ratline ARGS` names a command whose options accept ARGS (nothing is run)."""
    ctx = click.Context(cli, info_name="ratline")
    command = cli.get_command(ctx, args[0])
    assert isinstance(command, click.Command), f"ratline has no command {args[0]!r}"
    command.make_context(args[0], list(args[1:]), parent=ctx)


def test_entrypoint_is_the_installed_console_script() -> None:
    found = dict(instructions())
    assert json.loads(found["ENTRYPOINT"]) == ["ratline"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["ratline"] == "ratline.cli.main:main"
    assert any(
        v.startswith("pip install --no-cache-dir . ") for k, v in instructions() if k == "RUN"
    )
    assert_command_parses(json.loads(found["CMD"]))


def test_runs_as_the_proxy_user() -> None:
    users = [v for k, v in instructions() if k == "USER"]
    assert users == [f"{PROXY_UID}:{PROXY_UID}"]


def test_every_container_command_of_the_chart_is_a_ratline_command() -> None:
    checked = 0
    for obj in render("istio-system", resolve([])):
        if obj["kind"] != "Deployment":
            continue
        for container in obj["spec"]["template"]["spec"]["containers"]:
            if container["image"] == "auto":  # filled in by the sidecar injector
                continue
            assert "command" not in container  # the image's ENTRYPOINT: ratline
            assert_command_parses(container["args"])
            checked += 1
    assert checked == 1  # the control plane's
