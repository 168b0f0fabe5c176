"""The Kubernetes benchmark at its smoke size: a real kube-apiserver, the control plane
and simulated proxies end to end, and the report's section. No assertion is about speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.kube


@pytest.mark.timeout(240)
def test_kube_smoke_run_writes_its_section(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "kube", "--out-dir", str(out),
         "--log-dir", str(tmp_path / "logs")],
        cwd=REPO, capture_output=True, text=True, timeout=230,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "## Control plane on Kubernetes" in (out / "benchmarks.md").read_text()
    data = json.loads((out / "benchmarks.json").read_text())
    assert data["errors"] == {}
    (run,) = data["kube"]
    assert run["pod_ready_to_eds"]["all"]["count"] == run["size"]["proxies"]
