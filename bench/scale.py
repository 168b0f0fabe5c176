"""Control plane at scale: many simulated ADS proxies plus a few real Envoys.

One run: a generated mesh, the real control plane process, worker processes of simulated
proxies (`bench.adsclient`), real Envoys. Measures initial sync, control plane memory
and CPU, push convergence after an endpoint, a VirtualService and a new-service change,
and the time to connect and fully sync one new proxy.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import aioloop, mesh
from bench.adsclient import new_proxy_sync_times
from bench.procs import ProcessGroup, cpu_seconds, http_get, memory_kib, wait_for
from bench.sds import BenchSds
from ratline.agent.bootstrap import BootstrapParams, build_bootstrap, envoy_args
from ratline.registry.instances import WorkloadInstance
from ratline.settings import Settings

SETTLE_S = 0.3
ENDPOINT_CHANGES = 3
"""Endpoint changes per run (the figure is the median run; each run's p99 is kept)."""


@dataclass(frozen=True)
class ScaleSize:
    services: int
    endpoints: int
    proxies: int
    real_envoys: int
    workers: int = 2
    mode: str = "sotw"
    streams_per_channel: int = 1
    """Simulated proxies sharing one gRPC connection (1 = one connection each, as Envoys)."""


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median p99 (over all proxies), with every run's p99 and CPU."""
    ordered = sorted(runs, key=lambda r: r["all"]["p99_ms"])
    chosen = dict(ordered[len(ordered) // 2])
    chosen["runs_p99_ms"] = [r["all"]["p99_ms"] for r in runs]
    chosen["runs_cp_cpu_s"] = [r["cp_cpu_s"] for r in runs]
    return chosen


def latency_summary(latencies_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies_s]
    return {
        "p50_ms": percentile(ms, 50), "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"), "count": len(ms),
    }


class Workers:
    """Worker processes of simulated proxies, queried over their stdin/stdout."""

    def __init__(self, procs: ProcessGroup, xds: str, nodes: list[str], count: int,
                 mode: str, nack_nodes: set[str], streams_per_channel: int = 1,
                 metadata: dict[str, dict[str, Any]] | None = None) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        for w in range(count):
            share = nodes[w::count]
            proc = procs.start([sys.executable, "-m", "bench.adsclient"], name=f"adsclient-{w}",
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            config = {"xds": xds, "mode": mode, "nodes": share,
                      "streams_per_channel": streams_per_channel,
                      "nack_nodes": sorted(nack_nodes & set(share)),
                      "metadata": {n: metadata[n] for n in share} if metadata else {}}
            self._write(proc, json.dumps(config))
            self._read(proc)
            self.procs.append(proc)

    @staticmethod
    def _write(proc: subprocess.Popen[bytes], line: str) -> None:
        assert proc.stdin is not None
        proc.stdin.write(line.encode() + b"\n")
        proc.stdin.flush()

    @staticmethod
    def _read(proc: subprocess.Popen[bytes]) -> Any:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("a simulated-proxy worker exited; see its log")
        return json.loads(line)

    def watch(self, type_short: str, marker: bytes) -> None:
        """From now on, every proxy notes when a response of that type holds `marker`."""
        for proc in self.procs:
            self._write(proc, f"watch {type_short} {marker.hex()}")
        for proc in self.procs:
            self._read(proc)

    def stats(self, since: float = 0.0) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for proc in self.procs:
            self._write(proc, f"stats {since}")
        for proc in self.procs:
            merged.update(self._read(proc))
        return merged


class RealEnvoys:
    """Real sidecar Envoys connected to the control plane (ADS, same mode as the rest)."""

    def __init__(self, procs: ProcessGroup, settings: Settings, work: Path,
                 instances: list[WorkloadInstance], xds_host: str, xds_port: int,
                 delta: bool, sds_socket: str = "") -> None:
        self.admins: dict[str, int] = {}
        for inst in instances:
            assert inst.sidecar is not None
            params = BootstrapParams(
                node_id=inst.node_id, cluster=f"{inst.workload}.{inst.namespace}",
                xds_host=xds_host, xds_port=xds_port, admin_port=inst.sidecar.admin_port,
                delta=delta, sds_socket=sds_socket,
            )
            path = work / f"envoy-{inst.name}.json"
            path.write_text(json.dumps(build_bootstrap(params)))
            procs.start(envoy_args(settings.envoy, str(path), concurrency=1,
                                   log_level="error"), name=f"envoy-{inst.name}")
            self.admins[inst.node_id] = inst.sidecar.admin_port

    def all_ready(self) -> bool:
        for port in self.admins.values():
            try:
                if http_get(f"http://127.0.0.1:{port}/ready", timeout=2).strip() != b"LIVE":
                    return False
            except OSError:
                return False
        return True


def _acked_versions(cp: mesh.ControlPlaneProcess, nodes: set[str]) -> dict[str, dict[str, Any]]:
    return {p["node"]: p["types"] for p in cp.proxy_status(nodes) if p["node"] in nodes}


def _converge(cp: mesh.ControlPlaneProcess, workers: Workers, real_nodes: set[str],
              type_short: str, change: Any, timeout: float) -> dict[str, Any]:
    """Apply `change`, wait until every proxy got a new `type_short`; latencies and CPU."""
    before_real = _acked_versions(cp, real_nodes)
    cpu_before = cpu_seconds(cp.pid)
    wall0 = time.time()
    t0 = time.monotonic()
    change()
    latencies: dict[str, float] = {}

    def done() -> bool:
        for node, data in workers.stats(t0).items():
            hits = [e[0] for e in data["events"] if e[1] == type_short]
            if hits and node not in latencies:
                latencies[node] = min(hits) - t0
        return len(latencies) >= len(workers_nodes)

    workers_nodes = set(workers.stats(time.monotonic()).keys())
    wait_for(done, timeout, f"every simulated proxy to get a new {type_short}", interval=0.2)
    real_latencies: list[float] = []
    if real_nodes:
        def real_done() -> bool:
            now = _acked_versions(cp, real_nodes)
            got = []
            for node in real_nodes:
                t = now.get(node, {}).get(type_short, {})
                old = before_real.get(node, {}).get(type_short, {})
                if t.get("acked_version") and t.get("acked_version") != old.get("acked_version"):
                    got.append(float(t["last_ack_at"]) - wall0)
            if len(got) == len(real_nodes):
                real_latencies.extend(got)
                return True
            return False
        wait_for(real_done, timeout, f"every real Envoy to ACK a new {type_short}", interval=0.25)
    time.sleep(SETTLE_S)
    cpu = cpu_seconds(cp.pid) - cpu_before
    return {
        "simulated": latency_summary(list(latencies.values())),
        "real_envoys_ack": latency_summary(real_latencies),
        "all": latency_summary(list(latencies.values()) + real_latencies),
        "cp_cpu_s": cpu,
    }


def run_scale(size: ScaleSize, settings: Settings, log_dir: Path,
              new_proxy_samples: int = 5, changes: bool = True) -> dict[str, Any]:
    """One control-plane-at-scale run; returns its figures."""
    with tempfile.TemporaryDirectory(prefix="ratline-bench-") as tmp:
        work = Path(tmp)
        with ProcessGroup(log_dir / f"scale-{size.services}-{size.proxies}") as procs:
            return _run_scale(size, settings, work, procs, new_proxy_samples, changes)


def _run_scale(size: ScaleSize, settings: Settings, work: Path, procs: ProcessGroup,
               new_proxy_samples: int, changes: bool) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        return _measure(size, settings, work, procs, new_proxy_samples, changes, stack)


def _measure(size: ScaleSize, settings: Settings, work: Path, procs: ProcessGroup,
             new_proxy_samples: int, changes: bool, stack: contextlib.ExitStack[Any],
             ) -> dict[str, Any]:
    replicas = max(1, size.endpoints // size.services)
    mesh_dir = work / "mesh"
    mesh.write_services(mesh_dir, size.services)
    cp = mesh.ControlPlaneProcess(procs, mesh_dir)
    instances: list[WorkloadInstance] = []
    real: list[WorkloadInstance] = []
    proxied: list[WorkloadInstance] = []
    for replica in range(replicas):
        for s in range(size.services):
            wants_proxy = len(proxied) < size.proxies
            is_real = wants_proxy and len(real) < size.real_envoys
            inst = mesh.instance(s, replica, mesh.PortsFor.fresh() if is_real else None)
            instances.append(inst)
            if is_real:
                real.append(inst)
            if wants_proxy:
                proxied.append(inst)
    # Instances whose proxies connect one at a time for the "new proxy" figure.
    spare = [mesh.instance(s % size.services, replicas + s // size.services)
             for s in range(2, 2 + new_proxy_samples)]
    instances.extend(spare)
    cp.report(instances)
    wait_for(lambda: cp.status().get("pushes", 0) >= 2, 300, "the first snapshot")
    rss_idle = memory_kib(cp.pid)["rss"]
    cpu0 = cpu_seconds(cp.pid)
    simulated = [i.node_id for i in proxied if i not in real]
    nack_nodes = set(simulated[::50])
    t0 = time.monotonic()
    workers = Workers(procs, f"{cp.xds_host}:{cp.xds_port}", simulated, size.workers,
                      size.mode, nack_nodes, size.streams_per_channel)
    sds = stack.enter_context(BenchSds(work, [i.node_id for i in real])) if real else None
    envoys = RealEnvoys(procs, settings, work, real, cp.xds_host, cp.xds_port,
                        size.mode == "delta", str(sds.socket_path) if sds else "")

    envoys_ready: list[float] = []
    failed: dict[str, str] = {}

    def all_synced() -> dict[str, Any] | None:
        stats = workers.stats(time.monotonic())
        failed.update({n: d["error"] for n, d in stats.items() if d["error"]})
        if failed:  # returned, not raised: wait_for takes exceptions for "not up yet"
            return stats
        if all(d["synced_at"] for d in stats.values()):
            if not envoys_ready and envoys.all_ready():
                envoys_ready.append(time.monotonic())
            if envoys_ready:
                return stats
        return None

    stats = wait_for(all_synced, 600, "every proxy to sync", interval=0.25)
    if failed:
        raise RuntimeError(f"simulated proxies failed: {list(failed.items())[:3]}")
    sync_done = time.monotonic()
    sync_times = [d["synced_at"] - t0 for d in stats.values()]
    result: dict[str, Any] = {
        "size": size.__dict__,
        "initial_sync_s": sync_done - t0,
        "initial_sync_simulated_p50_s": percentile(sync_times, 50),
        "initial_sync_simulated_max_s": max(sync_times),
        "initial_sync_real_envoys_s": envoys_ready[0] - t0,
        "initial_sync_cpu_s": cpu_seconds(cp.pid) - cpu0,
        "nacks_sent": sum(d["nacks"] for d in stats.values()),
        "initial_sync_reconnects": sum(d["reconnects"] for d in stats.values()),
    }
    time.sleep(SETTLE_S)
    mem = memory_kib(cp.pid)
    result["cp_rss_idle_mib"] = rss_idle / 1024
    result["cp_rss_synced_mib"] = mem["rss"] / 1024
    real_nodes = {i.node_id for i in real}
    if changes:
        # One endpoint turns unhealthy: that service's load assignment changes.
        target = next(i for i in instances if i not in real and i not in spare)
        changed = [replace(i, healthy=False) if i is target else i for i in instances]
        bodies = [mesh.report_body(changed), mesh.report_body(instances)]
        runs = []
        for n in range(ENDPOINT_CHANGES):  # unhealthy, healthy again, unhealthy, ...
            body = bodies[n % 2]
            runs.append(_converge(
                cp, workers, real_nodes, "EDS", lambda body=body: cp.send_report(body), 120))
        result["endpoint_change"] = median_run(runs)
        vs = (
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            "metadata: {name: bench-vs, namespace: default}\n"
            f"spec:\n  hosts: [{mesh.service_name(1)}]\n  http:\n"
            f"  - timeout: 3s\n    route:\n    - destination: {{host: {mesh.service_name(1)}}}\n"
        )
        result["virtualservice_change"] = _converge(
            cp, workers, real_nodes, "RDS", lambda: cp.apply(vs), 120)
        result["new_service"] = _converge(
            cp, workers, real_nodes, "CDS",
            lambda: cp.apply(mesh.service_yaml(size.services)), 120)
    samples = aioloop.run(new_proxy_sync_times(
        f"{cp.xds_host}:{cp.xds_port}", [i.node_id for i in spare], size.mode, 30))
    result["new_proxy_sync_ms"] = (
        statistics.median(samples) * 1000 if samples else float("nan"))
    result["new_proxy_samples"] = len(samples)
    result["cp_rss_peak_mib"] = max(mem["rss"], memory_kib(cp.pid)["rss"]) / 1024
    return result
