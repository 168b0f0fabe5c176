"""Helpers for the traffic-task tests: instances of a running mesh, their Envoy access logs
(response flags) and stats, the httpbin example's in-mesh client, and waiting until a
change holds on every replica.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Mesh, mesh_env
from tests.helpers import free_fixed_port, http_get, wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
ACCESS_LINE = re.compile(r'^\[[^\]]+\] "(\S+) (\S+) [^"]*" (\d{3}) (\S+) ')
"""Envoy's (and Istio's) access log line: method, path, status, response flags."""


@dataclass(frozen=True)
class Instance:
    """One instance of the running mesh, from run.json."""

    name: str
    inbound_port: int
    admin_port: int
    app_log: Path
    access_log: Path
    """The sidecar's access log (Envoy's stdout)."""

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.inbound_port}{path}"


def instances(mesh: Mesh) -> dict[str, Instance]:
    found = {}
    for item in mesh.run_info()["instances"]:
        ports = item["ports"]
        found[item["name"]] = Instance(
            name=item["name"],
            inbound_port=int(ports[0]["inbound_port"]) if ports else 0,
            admin_port=int(item["sidecar"]["admin_port"]),
            app_log=Path(item["log"]),
            access_log=Path(item["access_log"]),
        )
    return found


def gateway_log(mesh: Mesh) -> Path:
    return Path(mesh.run_info()["gateways"][0]["log"])


def access_entries(log: Path) -> list[tuple[str, str, int, str]]:
    """(method, path, status, flags) of every access log line so far."""
    if not log.exists():
        return []
    out = []
    for line in log.read_text(errors="replace").splitlines():
        found = ACCESS_LINE.match(line)
        if found:
            method, path, status, flags = found.groups()
            out.append((method, path, int(status), flags))
    return out


def flags_for(log: Path, path_part: str, since: int = 0) -> Counter[tuple[int, str]]:
    """(status, flags) counts of the access entries after `since` whose path has `path_part`."""
    return Counter(
        (status, flags)
        for _, path, status, flags in access_entries(log)[since:]
        if path_part in path
    )


def stats(admin_port: int, pattern: str) -> dict[str, int]:
    """Counters and gauges of an Envoy whose names match `pattern` (a regex)."""
    query = urllib.parse.urlencode({"filter": pattern})
    status, body, _ = http_get(f"http://127.0.0.1:{admin_port}/stats?{query}")
    assert status == 200, body
    found = {}
    for line in body.splitlines():
        name, _, value = line.partition(": ")
        if value.strip().lstrip("-").isdigit():
            found[name] = int(value)
    return found


class Client:
    """The httpbin example's in-mesh client (`apps/client.py`): its calls go through its
    own sidecar, as Istio's sleep and fortio pods."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance

    def _get(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        url = self.instance.url(f"{path}?{urllib.parse.urlencode(params)}")
        status, body, _ = http_get(url, timeout=120)
        assert status == 200, body
        data: dict[str, Any] = json.loads(body)
        return data

    def call(
        self, url: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> dict[str, Any]:
        params = [("url", url), ("method", method)]
        params += [("h", f"{k}:{v}") for k, v in (headers or {}).items()]
        return self._get("/call", params)

    def load(
        self, url: str, n: int, c: int = 1, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        params = [("url", url), ("n", str(n)), ("c", str(c))]
        params += [("h", f"{k}:{v}") for k, v in (headers or {}).items()]
        return self._get("/load", params)


def holds(check: Callable[[], bool], in_a_row: int = 5, timeout: float = 20) -> None:
    """Wait until `check` holds `in_a_row` times in a row (so a change reached every
    replica and every proxy involved, not only the first one to answer)."""

    def steady() -> bool:
        return all(check() for _ in range(in_a_row))

    wait_for(steady, timeout=timeout, interval=0.05, what="the change to hold")


@contextmanager
def applied(mesh: Mesh, yaml_text: str, name: str) -> Iterator[None]:
    """`ratline apply` a change for the duration of a block, then `ratline delete` it."""
    path = mesh.dir.parent / name
    path.write_text(yaml_text)
    proc = mesh.ratline("apply", "-f", str(path), "--mesh", str(mesh.dir), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        yield
    finally:
        mesh.ratline("delete", "-f", str(path), "--mesh", str(mesh.dir), check=False)


def started_mesh(
    tmp_path_factory: pytest.TempPathFactory, example: str, extra: dict[str, str]
) -> Iterator[Mesh]:
    """An example's mesh directory plus `extra` files, up with access logs on; stopped after."""
    root = tmp_path_factory.mktemp(example)
    mesh_dir = root / "mesh"
    shutil.copytree(EXAMPLES / example, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
    (mesh_dir / "mesh.yaml").write_text("accessLogFile: /dev/stdout\n")
    for name, text in extra.items():
        (mesh_dir / name).write_text(text)
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
    try:
        mesh.up()
        yield mesh
    finally:
        mesh.down()


def settled_entries(log: Path) -> int:
    """The number of access log entries once none arrive any more: Envoy writes them out
    every second, so entries of earlier requests may still be on their way."""
    seen: list[int] = []

    def stable() -> int | None:
        seen.append(len(access_entries(log)))
        return seen[-1] if len(seen) >= 6 and len(set(seen[-6:])) == 1 else None

    return wait_for(stable, timeout=20, interval=0.3, what=f"{log.name} to settle")
