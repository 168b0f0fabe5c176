"""Where the telemetry overhead goes: proxy CPU per 1,000 requests through two Ratline
sidecars with telemetry piece by piece (`python -m bench.telemetry_profile`).

Meshes run side by side, one per variant (metrics off or on, histograms, tracing, peer
metadata), and fortio loads each in turn, interleaved, at a fixed rate.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from bench import fortio as fortio_tool
from bench.dataplane import (
    NO_ADDONS,
    RESPONSE_BYTES,
    SERVICE_PORT,
    TELEMETRY_OFF,
    LoadSize,
    RatlineMesh,
    _one_load,
    _probe,
    mesh_yaml,
)
from bench.procs import wait_for

HISTOGRAMS_OFF = """
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: histograms-off, namespace: istio-system}
spec:
  metrics:
  - overrides:
    - match: {metric: REQUEST_DURATION}
      disabled: true
    - match: {metric: REQUEST_SIZE}
      disabled: true
    - match: {metric: RESPONSE_SIZE}
      disabled: true
"""
VARIANTS = {
    "off": (TELEMETRY_OFF, "enableTracing: false\n"),
    "tracing 1% only": (TELEMETRY_OFF, ""),
    "counter only": (HISTOGRAMS_OFF, "enableTracing: false\n"),
    "metrics no tracing": ("", "enableTracing: false\n"),
    "all on (default)": ("", ""),
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry_profile")
    parser.add_argument("--qps", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default=",".join(VARIANTS))
    args = parser.parse_args()
    fortio = fortio_tool.ensure_fortio()
    size = LoadSize(qps=args.qps, connections=16, seconds=args.seconds, runs=args.runs)
    wanted = [v for v in VARIANTS if v in args.only.split(",")]
    path = f"/echo?size={RESPONSE_BYTES}"
    host = f"server:{SERVICE_PORT}"
    with tempfile.TemporaryDirectory(prefix="ratline-telemetry-profile-") as tmp:
        meshes: dict[str, RatlineMesh] = {}
        targets: dict[str, tuple[str, list[int]]] = {}
        try:
            for i, name in enumerate(wanted):
                extra, mesh_config = VARIANTS[name]
                mesh = RatlineMesh(Path(tmp) / f"m{i}", mesh_yaml(fortio) + extra, NO_ADDONS)
                if mesh_config:
                    (mesh.dir / "mesh.yaml").write_text(mesh_config)
                meshes[name] = mesh
                up = mesh.up()
                url = f"http://127.0.0.1:{up['client']['sidecar']['outbound_port']}{path}"
                pids = [int(up["client"]["proxy_pid"]), int(up["server"]["proxy_pid"])]
                wait_for(lambda u=url: _probe(fortio, u, host, Path(tmp)), 60, name)
                targets[name] = (url, pids)
            results: dict[str, list[dict[str, float]]] = {n: [] for n in wanted}
            for run in range(size.runs):
                for name, (url, pids) in targets.items():
                    out = Path(tmp) / f"{wanted.index(name)}-{run}.json"
                    results[name].append(_one_load(fortio, url, host, pids, size, out))
        finally:
            for mesh in meshes.values():
                mesh.down()
    base = statistics.median(r["proxy_cpu_ms_per_1k"] for r in results[wanted[0]])
    print(f"| variant | proxy CPU ms / 1k req | vs {wanted[0]} | p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for name in wanted:
        cpu = statistics.median(r["proxy_cpu_ms_per_1k"] for r in results[name])
        p50 = statistics.median(r["p50_ms"] for r in results[name])
        p99 = statistics.median(r["p99_ms"] for r in results[name])
        print(f"| {name} | {cpu:.1f} | {cpu / base:.2f}x | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
