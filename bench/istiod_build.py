"""Istio's own `pilot-discovery` (istiod), built from the Go module proxy for the bench.

`ensure_pilot_discovery()` returns the path of a pilot-discovery binary built from
`istio.io/istio` at a pinned pseudo-version into `bench/.tools/istiod-VERSION/`, and
builds it first when it is not there (a cold build takes 4-6 minutes and about 2 GB of
memory on 2 cores; it runs under `nice`). A second call returns at once.

Run without Kubernetes (`--registries=` and a config directory), that istiod panics at
start: the ServiceEntry registry takes its Namespace collection from the multicluster
controller, which exists only with a Kubernetes client. The build therefore copies the
module's source out of the module cache and, in the copy, gives the ServiceEntry
controller an empty, static Namespace collection when there is no multicluster
controller. Nothing of Istio's is kept in this repository: the change is made here, at
build time, and the build fails clearly if the line it changes is not where it expects.
The dependency versions stay Istio's own (its go.mod and go.sum, built in the copy).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

ISTIO_MODULE = "istio.io/istio"
ISTIO_VERSION = "v0.0.0-20260827124520-eed52ebb66ad"
"""Istio master of 2026-08-27 (VERSION 1.31): the newest pseudo-version the proxy serves."""
BUILD_TAGS = "vtprotobuf,disable_pgv"
TOOLS_DIR = Path(__file__).resolve().parent / ".tools"
BUILD_TIMEOUT_S = 3600

PATCHED_FILE = "pilot/pkg/serviceregistry/serviceentry/controller.go"
CRASHING_LINE = "\t\ts.inputs.Namespaces = multiclusterController.ConfigCluster().Namespaces()\n"
GUARDED_LINES = (
    "\t\tif multiclusterController != nil {\n"
    "\t\t\ts.inputs.Namespaces = multiclusterController.ConfigCluster().Namespaces()\n"
    "\t\t} else {\n"
    "\t\t\t// ratline bench: no Kubernetes, so no Namespace objects to read.\n"
    "\t\t\ts.inputs.Namespaces = krt.NewStaticCollection[*v1.Namespace](\n"
    "\t\t\t\tnil, nil, s.opts.WithName(\"inputs/Namespaces\")...)\n"
    "\t\t}\n"
)


class BuildError(RuntimeError):
    """pilot-discovery could not be built; the message says which step and why."""


def install_dir(version: str = ISTIO_VERSION) -> Path:
    return TOOLS_DIR / f"istiod-{version}"


def binary_path(version: str = ISTIO_VERSION) -> Path:
    return install_dir(version) / "pilot-discovery"


def is_built(version: str = ISTIO_VERSION) -> bool:
    return (install_dir(version) / ".done").is_file() and binary_path(version).is_file()


def _go() -> str:
    return shutil.which("go") or "/usr/local/go/bin/go"


def _module_source(version: str) -> Path:
    """Download the module (if not cached) and return its read-only directory."""
    out = subprocess.run(
        [_go(), "mod", "download", "-json", f"{ISTIO_MODULE}@{version}"],
        capture_output=True, text=True, timeout=900, cwd=TOOLS_DIR,
        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"},
    )
    try:
        info = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise BuildError(f"go mod download {ISTIO_MODULE}@{version} failed: "
                         f"{out.stderr.strip()[-2000:]}") from None
    if info.get("Error") or not info.get("Dir"):
        raise BuildError(f"go mod download {ISTIO_MODULE}@{version}: {info.get('Error')}")
    return Path(info["Dir"])


def patch_source(source_dir: Path) -> None:
    """Guard the line that dereferences a missing multicluster controller (see module doc)."""
    path = source_dir / PATCHED_FILE
    text = path.read_text()
    if GUARDED_LINES in text:
        return
    if text.count(CRASHING_LINE) != 1:
        raise BuildError(
            f"{PATCHED_FILE}: expected exactly one line {CRASHING_LINE.strip()!r} to guard "
            f"for running without Kubernetes; found {text.count(CRASHING_LINE)}: this Istio "
            "version needs a different change (see bench/istiod_build.py)"
        )
    path.write_text(text.replace(CRASHING_LINE, GUARDED_LINES))


def _copy_writable(src: Path, dst: Path) -> None:
    if dst.exists():
        _make_writable(dst)
        shutil.rmtree(dst)
    shutil.copytree(src, dst, symlinks=True)
    _make_writable(dst)


def _make_writable(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | stat.S_IWUSR)
        for name in files:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IWUSR)


def ensure_pilot_discovery(version: str = ISTIO_VERSION, log: Path | None = None) -> Path:
    """Path of the patched pilot-discovery, building it first if it is not there yet."""
    if is_built(version):
        return binary_path(version)
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    target = install_dir(version)
    target.mkdir(parents=True, exist_ok=True)
    source = _module_source(version)
    work = TOOLS_DIR / f"istio-src-{version}"
    _copy_writable(source, work)
    patch_source(work)
    print(f"bench: building pilot-discovery {version} (cold: 4-6 min, ~2 GB)…",
          file=sys.stderr, flush=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false"}
    out = target / "pilot-discovery.partial"
    args = ["nice", "-n", "10", _go(), "build", f"-tags={BUILD_TAGS}", "-trimpath",
            "-ldflags=-s -w", "-o", str(out), "./pilot/cmd/pilot-discovery"]
    log_path = log or target / "build.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.run(args, cwd=work, env=env, stdout=log_file, stderr=log_file,
                              timeout=BUILD_TIMEOUT_S)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise BuildError(f"go build pilot-discovery failed (exit {proc.returncode}), "
                         f"log {log_path}:\n{tail}")
    out.rename(binary_path(version))
    _make_writable(work)
    shutil.rmtree(work)  # 120 MB of source; the Go build cache keeps what a rebuild needs
    (target / ".done").write_text(f"{ISTIO_MODULE}@{version}\n")
    return binary_path(version)


if __name__ == "__main__":
    print(ensure_pilot_discovery())
