"""Concurrent xDS streams: how many proxies one control plane holds at once.

The real control plane process on a tiny mesh (per-proxy config is cheap, so what is
measured is the stream handling, not translation), N simulated proxies (`bench.adsclient`,
one gRPC connection each, retrying failed streams as Envoy does). Reports the streams
reached (the control plane's own count and the clients'), the time until every proxy held
all four types, the streams the server refused and which were retried, and the open-file
limits of every process. `python -m bench --only streams`.
"""

from __future__ import annotations

import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import mesh
from bench.procs import ProcessGroup, wait_for
from bench.scale import Workers

POLL_S = 0.5
STALL_S = 20.0
"""No new synced proxy for this long (and no retry pending progress): give up."""


@dataclass(frozen=True)
class StreamsSize:
    proxies: int
    services: int = 5
    workers: int = 2
    timeout_s: float = 120.0


def open_files_limit(pid: int) -> int | None:
    """The soft RLIMIT_NOFILE of a process (from /proc/PID/limits)."""
    try:
        with open(f"/proc/{pid}/limits") as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    return None if soft == "unlimited" else int(soft)
    except OSError:
        pass
    return None


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cp_streams(cp: mesh.ControlPlaneProcess) -> int:
    return sum(1 for p in cp.proxy_status() if p.get("connected"))


def run_streams(size: StreamsSize, log_dir: Path) -> dict[str, Any]:
    """Connect `size.proxies` simulated proxies to one control plane; the figures."""
    with tempfile.TemporaryDirectory(prefix="ratline-bench-") as tmp, \
            ProcessGroup(log_dir / f"streams-{size.proxies}") as procs:
        mesh_dir = Path(tmp) / "mesh"
        mesh.write_services(mesh_dir, size.services)
        cp = mesh.ControlPlaneProcess(procs, mesh_dir)
        replicas = -(-size.proxies // size.services)
        instances = [mesh.instance(s, r) for r in range(replicas)
                     for s in range(size.services)][:size.proxies]
        cp.report(instances)
        wait_for(lambda: cp.status().get("pushes", 0) >= 2, 60, "the first snapshot")
        t0 = time.monotonic()
        workers = Workers(procs, f"{cp.xds_host}:{cp.xds_port}",
                          [i.node_id for i in instances], size.workers, "sotw", set())
        max_live = 0
        synced = 0
        progress_at = time.monotonic()
        stats: dict[str, Any] = {}
        while time.monotonic() - t0 < size.timeout_s:
            stats = workers.stats(time.monotonic())
            max_live = max(max_live, sum(1 for d in stats.values() if d["live"]))
            now_synced = sum(1 for d in stats.values() if d["synced_at"])
            if now_synced > synced:
                synced, progress_at = now_synced, time.monotonic()
            if synced == size.proxies or any(d["error"] for d in stats.values()):
                break
            if time.monotonic() - progress_at > STALL_S:
                break
            time.sleep(POLL_S)
        elapsed = time.monotonic() - t0
        all_synced = synced == size.proxies
        cp_streams = _cp_streams(cp)
        failures = Counter(
            str(d["last_stream_error"]).split(":", 1)[0]
            for d in stats.values() if d["last_stream_error"]
        )
        return {
            "size": size.__dict__,
            "all_synced": all_synced,
            "synced": synced,
            "sync_s": elapsed if all_synced else None,
            "cp_streams": cp_streams,
            "max_live_streams": max_live,
            "proxies_refused_once_or_more": sum(
                1 for d in stats.values() if d["reconnects"]),
            "reconnects": sum(d["reconnects"] for d in stats.values()),
            "stream_failures_by_code": dict(failures),
            "errors": sorted({d["error"] for d in stats.values() if d["error"]})[:3],
            "open_files_limit": {
                "control_plane": open_files_limit(cp.pid),
                "workers": [open_files_limit(p.pid) for p in workers.procs],
            },
            "somaxconn": _read_int("/proc/sys/net/core/somaxconn"),
        }


def streams_md(runs: list[dict[str, Any]]) -> list[str]:
    """The report's section on concurrent streams."""
    lines = [
        "## Concurrent xDS streams", "",
        "The real control plane on a 5-service mesh, simulated proxies connecting all at "
        "once (one gRPC connection each; a refused stream is retried with Envoy's "
        "back-off, 0.5 s doubling to 30 s, jittered).", "",
        "| proxies | all synced | time to sync all (s) | streams held by the control plane "
        "| streams refused, then retried | refusals by gRPC code |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        sync_s = f"{r['sync_s']:.1f}" if r["sync_s"] is not None else "-"
        codes = ", ".join(f"{k} {v}" for k, v in sorted(r["stream_failures_by_code"].items()))
        lines.append(
            f"| {r['size']['proxies']} | {'yes' if r['all_synced'] else 'no'} | {sync_s} "
            f"| {r['cp_streams']} | {r['reconnects']} | {codes or '-'} |"
        )
    lines += [
        "",
        "A grpc.aio server takes incoming calls one at a time from gRPC core (one "
        "outstanding request per event loop turn); calls core holds that the application "
        "has not taken yet are shed: above 1,000 at random (certain at 3,000), and any "
        "waiting longer than 30 s; the client sees CANCELLED or INTERNAL. Envoy, and these "
        "simulated proxies, retry. `grpc.server.max_pending_requests`, "
        "`grpc.server.max_pending_requests_hard_limit` and "
        "`grpc.server_max_unrequested_time_in_server` (server options) move those limits.",
        "",
    ]
    return lines
