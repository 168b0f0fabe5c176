"""The benchmark suite at its smoke size: every benchmark runs end to end and the report
has every section. Not a timed test: no assertion is about speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

SECTION_TITLES = (
    "## 1. Data plane overhead",
    "## 2. Sidecar footprint",
    "## 3. Control plane at scale",
    "## 4. Growth",
    "## Where the time goes",
    "## Concurrent xDS streams",
    "## Misses, why, and what would close them",
)


@pytest.mark.timeout(240)
def test_smoke_run_writes_a_report_with_every_section(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out-dir", str(out),
         "--only", "dataplane,footprint,scale,growth,profile,streams",
         "--log-dir", str(tmp_path / "logs")],
        cwd=REPO, capture_output=True, text=True, timeout=230,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = (out / "benchmarks.md").read_text()
    for title in SECTION_TITLES:
        assert title in report, f"missing section {title!r}"
    assert "Machine:" in report and "Envoy" in report
    data = json.loads((out / "benchmarks.json").read_text())
    assert data["errors"] == {}
    assert data["machine"]["cores"] >= 1 and data["machine"]["memory_mib"] > 0
    paths = data["dataplane"]["paths"]
    for key in ("direct", "ratline", "ratline_telemetry_off", "static_envoy"):
        assert paths[key]["requests"] > 0 and paths[key]["errors"] == 0, (key, paths[key])
    assert data["dataplane"]["p99_ratio_telemetry_on_to_off"] > 0
    paced = data["dataplane"]["paced"]
    assert paced["load"]["connections"] == 1
    for key, figures in paced["paths"].items():
        assert figures["requests"] > 0 and figures["errors"] == 0, (key, figures)
    assert "One connection at" in report
    assert "Telemetry" in report and "Collector" in report
    assert {r["scoped"] for r in data["footprint"]["sidecars"]} == {False, True}
    assert {run["size"]["mode"] for run in data["scale"]} == {"sotw", "delta"}
    for run in data["scale"]:
        assert run["nacks_sent"] >= 1
        for change in ("endpoint_change", "virtualservice_change", "new_service"):
            assert run[change]["all"]["count"] == run["size"]["proxies"], (change, run[change])
    assert len(data["growth"]) >= 2
    for run in data["streams"]:
        assert run["all_synced"] and run["cp_streams"] == run["size"]["proxies"], run
