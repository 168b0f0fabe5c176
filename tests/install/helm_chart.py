"""The chart as the real `helm` renders it (`scripts/tools/build-helm`), for the tests.

`helm(...)` runs helm with its caches and config in a temporary folder (never the
user's) and, for install/upgrade, a given kubeconfig; `helm_template` renders
`charts/ratline`. `normalized` makes two renderings comparable object for object:
objects keyed by kind, namespace and name, and the ConfigMap's `mesh` text parsed (Helm's
`toYaml` and PyYAML write the same mapping with different quoting).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import run_checked
from tests.tools import tool

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "ratline"
_HOME = Path(tempfile.mkdtemp(prefix="ratline-helm-home-"))
atexit.register(shutil.rmtree, _HOME, True)


def helm(
    *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBE"))}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(_HOME / var.lower())
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return run_checked([tool("helm"), *args], env=env, check=check, timeout=timeout, cwd=REPO)


def set_args(sets: Iterable[str]) -> list[str]:
    return [arg for s in sets for arg in ("--set", s)]


def helm_template(namespace: str, sets: Iterable[str] = (), files: Iterable[Path] = ()) -> str:
    args = ["template", "ratline", str(CHART), "--namespace", namespace]
    args += [arg for f in files for arg in ("-f", str(f))]
    return helm(*args, *set_args(sets)).stdout


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return (obj["kind"], meta.get("namespace", ""), meta["name"])


def normalized(objects: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], Any]:
    out = {}
    for obj in objects:
        if obj["kind"] == "ConfigMap" and "mesh" in obj.get("data", {}):
            obj = {**obj, "data": {**obj["data"], "mesh": yaml.safe_load(obj["data"]["mesh"])}}
        assert key(obj) not in out, f"{key(obj)} twice"
        out[key(obj)] = obj
    return out
