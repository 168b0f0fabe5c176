"""The side-by-side section at its smoke size: the harness runs end to end.

Real control planes, real Envoys, real simulated-proxy workers, a tiny mesh. istiod takes
part when `bench/.tools` already holds the built pilot-discovery (`python -m bench
--only sidebyside` builds it; the cold build, 4-9 minutes, is too slow for CI); on a
clean clone (CI) this runs Ratline's side only and checks that the report says so.
Not a timed test: no assertion is about speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import istiod_build, sizes

REPO = Path(__file__).resolve().parents[2]
CHANGES = ("endpoint", "virtualservice", "new_service")


@pytest.mark.timeout(300)
def test_sidebyside_smoke_run_converges_every_proxy_on_every_change(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", "sidebyside", "--out-dir",
         str(out), "--log-dir", str(tmp_path / "logs")],
        cwd=REPO, capture_output=True, text=True, timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads((out / "benchmarks.json").read_text())
    assert data["errors"] == {}
    section = data["sidebyside"]
    servers = ["istiod", "ratline"] if istiod_build.is_built() else ["ratline"]
    assert section["servers"] == servers
    assert {(r["size"]["mode"], r["size"]["proxies"]) for r in section["runs"]} == {
        (s.mode, s.proxies) for s in sizes.SMOKE.sidebyside}
    for run in section["runs"]:
        size = run["size"]
        # Every EDS cluster of the mesh: one per service, one per subset of a routed one.
        eds_clusters = size["services"] + 2 * size["virtual_services"]
        for server in servers:
            side = run[server]
            assert side["held_by_a_proxy"]["EDS"] == eds_clusters, (server, side)
            assert side["held_by_a_proxy"]["RDS"] >= 1
            assert side["initial_sync"]["nacks_sent"] >= 1
            for change in CHANGES:
                figures = side[change]
                assert figures["all"]["count"] == size["proxies"], (server, change, figures)
                assert figures["envoys"]["count"] == size["real_envoys"], (server, change)
                assert 0 < figures["all"]["first_ms"] <= figures["all"]["max_ms"]
    report = (out / "benchmarks.md").read_text()
    assert "## 5. Side by side with istiod" in report
    assert report.count("| (a) p99 (ms) |") == len(section["runs"])
    assert ("Ratline's side only" in report) == (servers == ["ratline"])
