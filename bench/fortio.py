"""fortio, Istio's load generator: installed on demand, run at a fixed rate, parsed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

FORTIO_VERSION = "v1.66.5"
"""Pinned: later releases need a module (grol.io) the Go proxy here refuses."""

TOOLS_DIR = Path(__file__).resolve().parent / ".tools"


def ensure_fortio() -> str:
    """Path of a fortio binary: bench/.tools, PATH, $GOPATH/bin, or `go install` it now."""
    local = TOOLS_DIR / "fortio"
    if local.is_file():
        return str(local)
    found = shutil.which("fortio")
    if found:
        return found
    gopath = Path(os.environ.get("GOPATH", Path.home() / "go"))
    if (gopath / "bin" / "fortio").is_file():
        return str(gopath / "bin" / "fortio")
    go = shutil.which("go") or "/usr/local/go/bin/go"
    TOOLS_DIR.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(TOOLS_DIR)}
    subprocess.run(
        [go, "install", f"fortio.org/fortio@{FORTIO_VERSION}"], env=env, check=True, timeout=600
    )
    return str(local)


def load_args(
    fortio: str, url: str, qps: int, connections: int, seconds: float, out: Path,
    host: str | None = None,
) -> list[str]:
    args = [
        fortio, "load", "-quiet", "-qps", str(qps), "-c", str(connections),
        "-t", f"{seconds}s", "-json", str(out), "-a=false", "-p", "50,90,99,99.9",
    ]
    if host:
        args += ["-H", f"Host: {host}"]
    return [*args, url]


def summarize(result: dict[str, Any]) -> dict[str, float]:
    """Latencies in ms (p50/p90/p99/max), achieved rate, and the error count of a fortio run."""
    hist = result["DurationHistogram"]
    percentiles = {p["Percentile"]: p["Value"] for p in hist.get("Percentiles", [])}
    codes = result.get("RetCodes", {})
    ok = int(codes.get("200", 0))
    return {
        "p50_ms": percentiles.get(50, 0.0) * 1000,
        "p90_ms": percentiles.get(90, 0.0) * 1000,
        "p99_ms": percentiles.get(99, 0.0) * 1000,
        "max_ms": hist.get("Max", 0.0) * 1000,
        "qps": float(result.get("ActualQPS", 0.0)),
        "requests": int(hist.get("Count", 0)),
        "errors": int(hist.get("Count", 0)) - ok,
    }


def read_result(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data
