"""Where the 16-connection p50 goes: the data plane paths under different load shapes.

`python -m bench.dataplane_pacing` runs fortio against the backend directly and through
the floor's two Envoys (mutual TLS between them, as the data plane section's (c), which
Ratline's sidecars match to within noise) at the same total rate in several shapes:
16 connections all paced alike (fortio's default: every connection's goroutine starts at
once and keeps the same schedule, so requests leave in bursts of 16), 16 connections
spread evenly in time (`-uniform`), fewer connections, one connection. For each, the
latencies and, per request, the Envoys' CPU and context switches (/proc). Prints JSON;
the findings are written up in docs/benchmarks.md's notes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import fortio as fortio_tool
from bench import staticenvoy
from bench.procs import ProcessGroup, cpu_seconds, free_port, http_get, wait_for
from ratline.settings import Settings

SHAPES: tuple[tuple[str, int, int, list[str]], ...] = (
    ("16 connections, 1000 rps (bench default)", 1000, 16, []),
    ("16 connections, 1000 rps, -uniform", 1000, 16, ["-uniform"]),
    ("4 connections, 1000 rps", 1000, 4, []),
    ("1 connection, 1000 rps", 1000, 1, []),
    ("16 connections, 200 rps", 200, 16, []),
    ("16 connections, 200 rps, -uniform", 200, 16, ["-uniform"]),
    ("1 connection, 200 rps", 200, 1, []),
)
SECONDS = 10.0
PATH = "/echo?size=1024"


def _switches(pid: int) -> int:
    """Context switches of every thread of a process so far (each wake-up is one)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def _load(fortio: str, url: str, qps: int, connections: int, extra: list[str],
          pids: list[int], out: Path) -> dict[str, Any]:
    args = fortio_tool.load_args(fortio, url, qps, connections, SECONDS, out)
    args = [*args[:2], *extra, *args[2:]]
    cpu0, sw0 = sum(map(cpu_seconds, pids)), sum(map(_switches, pids))
    subprocess.run(args, capture_output=True, timeout=SECONDS + 60, check=True)
    summary: dict[str, Any] = fortio_tool.summarize(fortio_tool.read_result(out))
    n = max(summary["requests"], 1)
    summary["envoy_cpu_us_per_req"] = (sum(map(cpu_seconds, pids)) - cpu0) / n * 1e6
    summary["envoy_switches_per_req"] = (sum(map(_switches, pids)) - sw0) / n
    return summary


def main() -> None:
    fortio = fortio_tool.ensure_fortio()
    settings = Settings.from_env()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ratline-pacing-") as tmp, \
            ProcessGroup(Path(tmp) / "logs") as procs:
        work = Path(tmp)
        backend = free_port()
        procs.start([fortio, "server", "-http-port", str(backend), "-grpc-port", "disabled",
                     "-redirect-port", "disabled"], name="fortio-server")
        wait_for(lambda: http_get(f"http://127.0.0.1:{backend}{PATH}"), 30, "fortio server")
        certs = staticenvoy.make_certificates(work / "certs")
        c_listen, pids = staticenvoy.start_floor(procs, settings.envoy, work, backend, certs)
        floor = f"http://127.0.0.1:{c_listen}{PATH}"
        wait_for(lambda: http_get(floor), 30, "traffic through the floor")
        paths = {"direct": (f"http://127.0.0.1:{backend}{PATH}", []), "two Envoys": (floor, pids)}
        for label, qps, conns, extra in SHAPES:
            for path, (url, envoy_pids) in paths.items():
                figures = _load(fortio, url, qps, conns, extra, envoy_pids,
                                work / "out.json")
                results.append({"shape": label, "path": path, **figures})
                print(f"{label:45s} {path:10s} p50 {figures['p50_ms']:.2f} p90 "
                      f"{figures['p90_ms']:.2f} p99 {figures['p99_ms']:.2f} ms, "
                      f"{figures['envoy_cpu_us_per_req']:.0f} us CPU, "
                      f"{figures['envoy_switches_per_req']:.1f} switches / req",
                      file=sys.stderr, flush=True)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
