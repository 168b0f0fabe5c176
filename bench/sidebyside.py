"""istiod and Ratline side by side: the same mesh, fleet and file edits, one at a time.

For each size and xDS flavour (delta, state of the world), each control plane in turn
(istiod first, then Ratline; never both at once, neither niced) gets:
- the same config directory of Istio kinds (`bench.istiomesh`: ServiceEntries with inline
  endpoints and with WorkloadEntries, DestinationRules, weighted VirtualServices), a
  fresh copy each;
- the same fleet (`bench.fleet`): simulated proxies and real Envoys, all opening their
  streams at once. istiod learns of a proxy from its stream; Ratline serves the proxies
  its registry knows, so the bench first reports the fleet as a runner would (as istiod
  would learn pods from Kubernetes) and waits for that push, before anything is timed;
- the same file edits: (a) one endpoint address of a ServiceEntry, (b) the weights of one
  VirtualService, (c) a new ServiceEntry; each `repetitions` times, the median kept.

Measured identically for both: initial sync per proxy (from the fleet's start to holding
all four types; an Envoy: to `/ready` LIVE), the control plane's RSS (idle, synced, and
its high-water mark), its CPU for the initial sync and per push (from the edit until it
is idle again), and per-proxy convergence: from the file edit (the bench's clock) until
that proxy has the change (`bench.istiomesh.Edit.marker` for a simulated proxy, which
ACKs at once; Envoy's own record of applying it for an Envoy, see `bench.fleet`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import istiod, istiod_build, istiomesh, mesh
from bench.fleet import EnvoyFleet, FleetProxy, make_fleet
from bench.procs import ProcessGroup, cpu_seconds, wait_for
from bench.procs import tree_cpu_seconds as cp_cpu_seconds
from bench.procs import tree_memory_kib as memory_kib
from bench.procs import tree_peak_rss_kib as peak_rss_kib
from bench.pyspy import Profiler, summarize
from bench.scale import Workers, latency_summary, percentile
from bench.sds import BenchSds
from ratline.settings import Settings

SERVERS = ("istiod", "ratline")
QUIET_WINDOW_S = 0.5
QUIET_CPU_S = 0.025
"""A control plane is idle once it used under 5 % of a core over half a second."""
CHANGE_TIMEOUT_S = 180.0
SYNC_TIMEOUT_S = 900.0
NACK_SHARE = 50
"""As in the scale section, one simulated proxy in 50 NACKs its first route config."""
RATLINE_DEBOUNCE = {
    "file watch": "watchfiles, 50 ms quiet (step 25 ms), then a reload of the changed files",
    "push": "push_debounce_ms 50 ms quiet, push_debounce_max_ms 500 ms",
}


@dataclass(frozen=True)
class SideBySideSize:
    proxies: int
    mode: str
    services: int = 1000
    endpoints: int = 5000
    virtual_services: int = 100
    real_envoys: int = 20
    workers: int = 2
    repetitions: int = 3

    @property
    def shape(self) -> istiomesh.MeshShape:
        return istiomesh.MeshShape(self.services, self.endpoints, self.virtual_services)


def wait_quiet(pid: int, timeout: float = 60.0) -> float:
    """Wait until the process is idle (see QUIET_CPU_S); returns the seconds waited."""
    start = time.monotonic()
    before = cp_cpu_seconds(pid)
    while time.monotonic() - start < timeout:
        time.sleep(QUIET_WINDOW_S)
        now = cp_cpu_seconds(pid)
        if now - before < QUIET_CPU_S:
            break
        before = now
    return time.monotonic() - start


class _Server:
    """One control plane of the comparison, started on a config directory."""

    name: str
    pid: int
    xds_host: str
    xds_port: int


class _Istiod(_Server):
    def __init__(self, procs: ProcessGroup, binary: Path, config_dir: Path, work: Path,
                 _fleet: list[FleetProxy]) -> None:
        self.name = "istiod"
        p = istiod.IstiodProcess(procs, binary, config_dir, work)
        self.pid, self.xds_host, self.xds_port = p.pid, p.xds_host, p.xds_port


class _Ratline(_Server):
    def __init__(self, procs: ProcessGroup, _binary: Path | None, config_dir: Path,
                 _work: Path, fleet: list[FleetProxy], workers: int | None = None) -> None:
        self.name = "ratline" if workers is None else f"ratline-w{workers}"
        env = {} if workers is None else {"RATLINE_XDS_WORKERS": str(workers)}
        cp = mesh.ControlPlaneProcess(procs, config_dir, env)
        pushes = cp.status().get("pushes", 0)
        cp.report([p.instance() for p in fleet])
        wait_for(lambda: cp.status().get("pushes", 0) > pushes, 300,
                 "Ratline's push after the fleet's report")
        self.pid, self.xds_host, self.xds_port = cp.pid, cp.xds_host, cp.xds_port


def run_sidebyside(sizes: list[SideBySideSize], settings: Settings, log_dir: Path,
                   servers: tuple[str, ...] = SERVERS, profile: bool = False,
                   progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Every size, each server in turn; builds istiod first when it is asked for. With
    `profile`, one more endpoint and VirtualService change of Ratline's runs under py-spy
    (after the measured ones, which it does not touch). A run that fails is recorded as
    its error and the others go on; `progress` gets the figures so far after each run."""
    binary = istiod_build.ensure_pilot_discovery() if "istiod" in servers else None
    runs: list[dict[str, Any]] = []
    section = _section(runs, servers)
    for size in sizes:
        run: dict[str, Any] = {"size": asdict(size)}
        runs.append(run)
        for server in servers:
            print(f"bench: sidebyside {size.mode} {size.proxies} proxies: {server}…",
                  file=sys.stderr, flush=True)
            load = os.getloadavg()
            logs = log_dir / f"sidebyside-{size.mode}-{size.proxies}-{server}"
            try:
                run[server] = _run_one(server, size, settings, binary, logs,
                                       profile and server.startswith("ratline"))
            except (RuntimeError, TimeoutError, OSError, ValueError) as exc:
                traceback.print_exc()
                run[server] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            run[server]["load_before"] = load
            if progress is not None:
                progress(section)
    return section


def _section(runs: list[dict[str, Any]], servers: tuple[str, ...]) -> dict[str, Any]:
    return {
        "runs": runs,
        "servers": list(servers),
        "istiod": {
            "module": f"{istiod_build.ISTIO_MODULE}@{istiod_build.ISTIO_VERSION}",
            "max_requests_per_second": istiod.RATE_LIMIT,
            "keepalive_timeout": istiod.KEEPALIVE_TIMEOUT,
            "debounce": istiod.DEBOUNCE,
        },
        "ratline_debounce": RATLINE_DEBOUNCE,
    }


def _run_one(server: str, size: SideBySideSize, settings: Settings, binary: Path | None,
             log_dir: Path, profile: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ratline-sbs-") as tmp:
        work = Path(tmp)
        config_dir = work / "config"
        istiomesh.write_mesh(config_dir, size.shape)
        fleet = make_fleet(size.proxies, size.real_envoys)
        if log_dir.exists():
            shutil.rmtree(log_dir)
        # The SDS server outlives the Envoys it serves: the stack closes after the group.
        with contextlib.ExitStack() as stack, ProcessGroup(log_dir) as procs:
            cp: _Server
            if server == "istiod":
                assert binary is not None
                cp = _Istiod(procs, binary, config_dir, work, fleet)
            else:
                workers = server.removeprefix("ratline-w")  # ratline-wN: N xDS workers
                cp = _Ratline(procs, binary, config_dir, work, fleet,
                              int(workers) if workers.isdigit() else None)
            return _measure(cp, size, settings, procs, work, config_dir, fleet, stack, profile)


def _measure(cp: _Server, size: SideBySideSize, settings: Settings, procs: ProcessGroup,
             work: Path, config_dir: Path, fleet: list[FleetProxy],
             stack: contextlib.ExitStack[Any], profile: bool) -> dict[str, Any]:
    wait_quiet(cp.pid)
    result: dict[str, Any] = {"rss_idle_mib": memory_kib(cp.pid)["rss"] / 1024}
    simulated = [p for p in fleet if not p.real]
    nodes = [p.node_id for p in simulated]
    cpu0 = cp_cpu_seconds(cp.pid)
    t0 = time.monotonic()
    workers = Workers(procs, f"{cp.xds_host}:{cp.xds_port}", nodes, size.workers, size.mode,
                      set(nodes[::NACK_SHARE]),
                      metadata={p.node_id: p.metadata for p in simulated})
    sds = ""
    if cp.name == "ratline" and size.real_envoys:
        sds = str(stack.enter_context(BenchSds(work, [p.node_id for p in fleet if p.real]))
                  .socket_path)
    envoys = EnvoyFleet(procs, settings.envoy, work, fleet, cp.xds_host, cp.xds_port,
                        size.mode == "delta", sds)
    stats = _wait_synced(workers, envoys, t0)
    synced = time.monotonic()
    result["initial_sync_cpu_s"] = cp_cpu_seconds(cp.pid) - cpu0
    fleet_pids = [p.pid for p in workers.procs] + envoys.pids
    result["initial_sync_fleet_cpu_s"] = sum(map(cpu_seconds, fleet_pids))
    times = [d["synced_at"] - t0 for d in stats.values()]
    times += [t - t0 for t in envoys.ready_at.values()]
    result["initial_sync"] = {
        "p50_s": percentile(times, 50), "p99_s": percentile(times, 99),
        "all_s": synced - t0, "envoys_s": max(envoys.ready_at.values(), default=t0) - t0,
        "reconnects": sum(d["reconnects"] for d in stats.values()),
        "stream_errors": Counter(d["last_stream_error"] for d in stats.values()
                                 if d["last_stream_error"]).most_common(5),
        "nacks_sent": sum(d["nacks"] for d in stats.values()),
    }
    # What one proxy holds (the same mesh must give both servers' proxies the same).
    result["held_by_a_proxy"] = max((d["held"] for d in stats.values()),
                                    key=lambda h: sum(h.values()), default={})
    result["initial_sync_bytes_per_proxy"] = median(
        [float(d["bytes_received"]) for d in stats.values()])
    wait_quiet(cp.pid)
    result["rss_synced_mib"] = memory_kib(cp.pid)["rss"] / 1024
    result["rss_peak_sync_mib"] = peak_rss_kib(cp.pid) / 1024
    for kind, make in istiomesh.EDITS.items():
        reps = [_converge(cp, workers, envoys, config_dir, make(size.shape, n), fleet_pids)
                for n in range(size.repetitions)]
        ordered = sorted(reps, key=lambda r: r["all"]["p99_ms"])
        chosen = dict(ordered[len(ordered) // 2])
        chosen["repetitions_p99_ms"] = [r["all"]["p99_ms"] for r in reps]
        chosen["repetitions_cpu_s"] = [r["cp_cpu_s"] for r in reps]
        result[kind] = chosen
    result["rss_peak_mib"] = peak_rss_kib(cp.pid) / 1024
    if profile:
        result["profiles"] = {}
        for kind in ("endpoint", "virtualservice"):
            edit = istiomesh.EDITS[kind](size.shape, size.repetitions)
            out = procs.log_dir / f"py-spy-{kind}.txt"
            profiler = Profiler(cp.pid, out)
            try:
                figures = _converge(cp, workers, envoys, config_dir, edit, fleet_pids)
            finally:
                profiler.stop()
            result["profiles"][kind] = {"convergence": figures["all"],
                                        "cp_cpu_s": figures["cp_cpu_s"], **summarize(out)}
    return result


def _wait_synced(workers: Workers, envoys: EnvoyFleet, t0: float) -> dict[str, Any]:
    failed: dict[str, str] = {}

    def all_synced() -> dict[str, Any] | None:
        now = time.monotonic()
        stats = workers.stats(now)
        failed.update({n: d["error"] for n, d in stats.items() if d["error"]})
        if failed:  # returned, not raised: wait_for takes exceptions for "not up yet"
            return stats
        envoys_ready = envoys.poll_ready(now)
        if envoys_ready and all(d["synced_at"] for d in stats.values()):
            return stats
        return None

    stats: dict[str, Any] = wait_for(all_synced, SYNC_TIMEOUT_S, "every proxy to sync",
                                     interval=0.25)
    if failed:
        raise RuntimeError(f"simulated proxies failed: {list(failed.items())[:3]}")
    return stats


def _converge(cp: _Server, workers: Workers, envoys: EnvoyFleet, config_dir: Path,
              edit: istiomesh.Edit, fleet_pids: list[int]) -> dict[str, Any]:
    """Make one edit; per-proxy time until it has the change, and the control plane's CPU."""
    wait_quiet(cp.pid)
    workers.watch(edit.type_short, edit.marker)
    if edit.kind == "endpoint":
        envoys.upstream_debug(True)
    offsets = envoys.log_offsets()
    cpu_before = cp_cpu_seconds(cp.pid)
    fleet_before = sum(map(cpu_seconds, fleet_pids))
    wall0, t0 = time.time(), time.monotonic()
    edit.apply(config_dir)
    hits: dict[str, float] = {}

    def simulated_done() -> bool:
        for node, data in workers.stats(t0).items():
            if data["watch_hit"] is not None:
                hits[node] = data["watch_hit"] - t0
        return len(hits) == len(workers_nodes)

    workers_nodes = set(workers.stats(time.monotonic()).keys())
    wait_for(simulated_done, CHANGE_TIMEOUT_S,
             f"every simulated proxy to get {edit.kind} ({edit.path})", interval=0.2)
    real: dict[str, float] = {}

    def envoys_done() -> bool:
        real.update(envoys.changed_at(edit, wall0, offsets))
        return len(real) == len(envoys.proxies)

    wait_for(envoys_done, CHANGE_TIMEOUT_S, f"every Envoy to take {edit.kind} in",
             interval=0.25)
    if edit.kind == "endpoint":
        envoys.upstream_debug(False)
    wait_quiet(cp.pid)
    cpu = cp_cpu_seconds(cp.pid) - cpu_before
    fleet_cpu = sum(map(cpu_seconds, fleet_pids)) - fleet_before
    real_s = [t - wall0 for t in real.values()]
    everything = list(hits.values()) + real_s
    summary = latency_summary(everything)
    summary["first_ms"] = min(everything) * 1000 if everything else float("nan")
    return {
        "edit": {"file": edit.path, **edit.detail},
        "simulated": latency_summary(list(hits.values())),
        "envoys": latency_summary(real_s),
        "all": summary,
        "cp_cpu_s": cpu,
        "fleet_cpu_s": fleet_cpu,
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
