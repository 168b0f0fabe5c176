"""Finding the running mesh a command is about: `--mesh DIR`, `RATLINE_MESH`, or the cwd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ratline.settings import state_dir

RUN_FILE = "run.json"

mesh_option = click.option(
    "--mesh",
    "mesh_dir",
    envvar="RATLINE_MESH",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default="current directory, or $RATLINE_MESH",
    help="The mesh directory of the running mesh.",
)


def run_file(mesh_dir: Path) -> Path:
    return state_dir(mesh_dir.resolve()) / RUN_FILE


def read_run_info(mesh_dir: Path) -> dict[str, Any]:
    """The running mesh's run.json, or a ClickException saying none is running there."""
    path = run_file(mesh_dir)
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise click.ClickException(
            f"no running mesh in {mesh_dir.resolve()} (no {path}); start one with "
            f"`ratline up DIR`, or pass --mesh DIR / set RATLINE_MESH"
        ) from None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{path}: unreadable: {exc}") from None
    return data


def admin_url(mesh_dir: Path) -> str:
    """`http://127.0.0.1:PORT` of the running control plane's admin API."""
    info = read_run_info(mesh_dir)
    try:
        return f"http://{info['control_plane']['admin']}"
    except (KeyError, TypeError):
        raise click.ClickException(
            f"{run_file(mesh_dir)}: the control plane has not started yet"
        ) from None
