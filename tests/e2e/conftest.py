"""Fixtures that run a real mesh: `ratline up -d` on a temporary mesh directory.

Every process the mesh starts is stopped by the fixture's finalizer, even when the test
fails: first `ratline down`, then SIGKILL for any PID that run.json ever named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_fixed_port, http_get, kill_pids, wait_for

REPO = Path(__file__).resolve().parents[2]


class Mesh:
    """A running mesh started through the CLI, as a user would."""

    def __init__(self, mesh_dir: Path, env: dict[str, str]) -> None:
        self.dir = mesh_dir
        self.env = env
        self.seen_pids: set[int] = set()

    def ratline(self, *args: str, check: bool = True, timeout: float = 60,
                stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "ratline", *args],
            cwd=self.dir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"ratline {' '.join(args)} exited {proc.returncode}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.dir / ".ratline" / "run.json").read_text())
        self.seen_pids |= _pids(info)
        return info

    def up(self) -> None:
        self.ratline("up", "-d", str(self.dir), timeout=120)
        self.run_info()

    def down(self) -> None:
        info_path = self.dir / ".ratline" / "run.json"
        if info_path.exists():
            self.run_info()
            self.ratline("down", "--mesh", str(self.dir), check=False, timeout=60)
        kill_pids(self.seen_pids, timeout=5)

    def apply(self, yaml_text: str, name: str = "applied.yaml") -> subprocess.CompletedProcess[str]:
        path = self.dir.parent / name
        path.write_text(yaml_text)
        return self.ratline("apply", "-f", str(path), "--mesh", str(self.dir), check=False)

    def apply_ok(self, yaml_text: str, name: str) -> Path:
        """Apply `yaml_text` (written as `name` beside the mesh) and fail on any error."""
        proc = self.apply(yaml_text, name)
        assert proc.returncode == 0 and "Error" not in proc.stderr, proc.stderr
        return self.dir.parent / name

    def delete_file(self, path: Path) -> None:
        self.ratline("delete", "-f", str(path), "--mesh", str(self.dir), check=False)

    def gateway_url(self, path: str = "/") -> str:
        port = int(self.env["RATLINE_GATEWAY_PORT_OFFSET"]) + 80
        return f"http://127.0.0.1:{port}{path}"

    def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        status, body, _ = http_get(url, headers)
        return status, body

    def admin_headers(self) -> dict[str, str]:
        """The admin API credential (`DIR/.ratline/admin-token`) as a request header."""
        token = (self.dir / ".ratline" / "admin-token").read_text().strip()
        return {"Authorization": f"Bearer {token}"}

    def proxy_status(self) -> list[dict[str, Any]]:
        out = self.ratline("proxy-status", "-o", "json", "--mesh", str(self.dir)).stdout
        data = json.loads(out)
        return list(data["proxies"] if isinstance(data, dict) else data)


def _pids(info: dict[str, Any]) -> set[int]:
    pids: set[int] = set()
    for key in ("runner_pid",):
        if info.get(key):
            pids.add(int(info[key]))
    cp = info.get("control_plane") or {}
    if cp.get("pid"):
        pids.add(int(cp["pid"]))
    for addon in (info.get("addons") or {}).values():
        if addon.get("pid"):
            pids.add(int(addon["pid"]))
    for group in ("instances", "gateways"):
        for item in info.get(group) or ():
            for key in ("app_pid", "proxy_pid", "pid"):
                if item.get(key):
                    pids.add(int(item[key]))
    return pids


def version_subsets(host: str, name: str | None = None) -> str:
    """A DestinationRule with subsets v1 and v2 (by the `version` label) for `host`."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name or host}}}
spec:
  host: {host}
  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"""


def mesh_env(gateway_port: int, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["RATLINE_GATEWAY_PORT_OFFSET"] = str(gateway_port - 80)
    env["PYTHONUNBUFFERED"] = "1"
    env["RATLINE_PROMETHEUS"] = "off"  # the tests that want the add-on say so
    env.update(overrides)
    return env


@pytest.fixture
def make_mesh(tmp_path: Path) -> Iterator[Any]:
    """`make_mesh(source_dir_or_files, **settings)` → a started Mesh; stopped at teardown."""
    meshes: list[Mesh] = []

    def make(source: Path | dict[str, str], start: bool = True, **settings: str) -> Mesh:
        mesh_dir = tmp_path / f"mesh{len(meshes)}"
        if isinstance(source, Path):
            shutil.copytree(source, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
        else:
            mesh_dir.mkdir()
            for rel, text in source.items():
                (mesh_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (mesh_dir / rel).write_text(text)
        overrides = {f"RATLINE_{k.upper()}": v for k, v in settings.items()}
        env = mesh_env(free_fixed_port(), **overrides)
        mesh = Mesh(mesh_dir, env)
        meshes.append(mesh)
        if start:
            mesh.up()
        return mesh

    yield make
    for mesh in meshes:
        mesh.down()


def wait_status(mesh: Mesh, url: str, want: int = 200, timeout: float = 20,
                headers: dict[str, str] | None = None) -> str:
    def check() -> str | None:
        status, body = mesh.get(url, headers)
        return body if status == want else None

    return wait_for(check, timeout=timeout, what=f"{url} → {want}")
