"""Data plane overhead: fortio at a fixed rate through (a) nothing, (b) two Ratline
sidecars, (c) two Envoys with a minimal static config — the floor.

(b) is a real mesh started with `ratline up -d`: a `server` Workload running a fortio
server and a `client` Workload whose sidecar the load enters (fortio sends `Host:
server:8080` to the client sidecar's HTTP proxy listener, as an app behind HTTP_PROXY
would). Whether (b) runs mTLS is read from the server sidecar's config dump; the floor
(c) uses mutual TLS exactly when (b) does, unless `tls` forces it. Runs are interleaved
(a, b, c, a, b, c, …) so that the ratios compare like with like.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import fortio as fortio_tool
from bench import staticenvoy
from bench.procs import ProcessGroup, cpu_seconds, free_port, http_get, kill_pids, wait_for
from ratline.settings import Settings

RESPONSE_BYTES = 1024
SERVICE_PORT = 8080


@dataclass(frozen=True)
class LoadSize:
    qps: int
    connections: int
    seconds: float
    runs: int


TELEMETRY_OFF = """
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: metrics-off, namespace: istio-system}
spec:
  metrics:
  - overrides:
    - match: {metric: ALL_METRICS}
      disabled: true
"""
"""With it (and `enableTracing: false`), the mesh counts nothing: the telemetry-off row."""
NO_ADDONS = {"RATLINE_PROMETHEUS": "off"}


def mesh_yaml(fortio: str) -> str:
    server_cmd = (f"exec {fortio} server -http-port $PORT -grpc-port disabled "
                  "-redirect-port disabled")
    return f"""apiVersion: v1
kind: Service
metadata: {{name: server, namespace: default}}
spec:
  selector: {{app: server}}
  ports: [{{name: http, port: {SERVICE_PORT}, targetPort: {SERVICE_PORT}}}]
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {{name: server, labels: {{app: server}}}}
spec:
  replicas: 1
  command: [sh, -c, "{server_cmd}"]
  ports: [{{name: http, containerPort: {SERVICE_PORT}}}]
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {{name: client, labels: {{app: client}}}}
spec:
  replicas: 1
  command: [sleep, "100000"]
"""


class RatlineMesh:
    """`ratline up -d` on a two-workload mesh; `down` stops it and anything it started."""

    def __init__(self, mesh_dir: Path, yaml_text: str, env: dict[str, str],
                 workloads: tuple[str, ...] = ("client", "server")) -> None:
        self.dir = mesh_dir
        self.workloads = workloads
        mesh_dir.mkdir(parents=True, exist_ok=True)
        (mesh_dir / "bench.yaml").write_text(yaml_text)
        self.env = {k: v for k, v in {**os.environ, **env}.items()
                    if not k.lower().endswith("_proxy")}
        self.env["RATLINE_GATEWAY_PORT_OFFSET"] = str(free_port() - 80)
        self.pids: set[int] = set()

    def _ratline(self, *args: str, timeout: float = 120) -> None:
        subprocess.run([sys.executable, "-m", "ratline", *args], cwd=self.dir, env=self.env,
                       check=True, capture_output=True, timeout=timeout)

    def run_info(self) -> dict[str, Any]:
        info: dict[str, Any] = json.loads((self.dir / ".ratline" / "run.json").read_text())
        for inst in info.get("instances") or ():
            self.pids |= {p for p in (inst.get("app_pid"), inst.get("proxy_pid")) if p}
        for key in ("runner_pid",):
            if info.get(key):
                self.pids.add(int(info[key]))
        cp = info.get("control_plane") or {}
        if cp.get("pid"):
            self.pids.add(int(cp["pid"]))
        for gw in info.get("gateways") or ():
            if gw.get("pid"):
                self.pids.add(int(gw["pid"]))
        return info

    def up(self) -> dict[str, dict[str, Any]]:
        """Start the mesh; returns run.json's instances by workload, once both are ready."""
        self._ratline("up", "-d", str(self.dir))

        def ready() -> dict[str, dict[str, Any]] | None:
            by_workload = {i["workload"]: i for i in self.run_info().get("instances") or ()}
            if set(self.workloads) <= set(by_workload) and all(
                i.get("sidecar_ready") and i.get("proxy_pid") for i in by_workload.values()
            ):
                return by_workload
            return None

        return wait_for(ready, 180, f"the sidecars of {', '.join(self.workloads)}")

    def down(self) -> None:
        try:
            if (self.dir / ".ratline" / "run.json").exists():
                self.run_info()
                self._ratline("down", "--mesh", str(self.dir), timeout=60)
        except (subprocess.SubprocessError, OSError, ValueError):
            pass
        kill_pids(self.pids)


def config_dump_has_tls(admin_port: int) -> bool:
    dump = http_get(f"http://127.0.0.1:{admin_port}/config_dump")
    return b"DownstreamTlsContext" in dump


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = runs[0].keys()
    return {k: statistics.median(r[k] for r in runs) for k in keys}


def run_dataplane(size: LoadSize, settings: Settings, fortio: str, log_dir: Path,
                  tls: str = "auto") -> dict[str, Any]:
    """The three paths side by side; medians over `size.runs` interleaved runs."""
    with tempfile.TemporaryDirectory(prefix="ratline-bench-dp-") as tmp, \
            ProcessGroup(log_dir / "dataplane") as procs:
        work = Path(tmp)
        backend = free_port()
        procs.start([fortio, "server", "-http-port", str(backend), "-grpc-port", "disabled",
                     "-redirect-port", "disabled"], name="fortio-server")
        path = f"/echo?size={RESPONSE_BYTES}"
        wait_for(lambda: http_get(f"http://127.0.0.1:{backend}{path}"), 30, "fortio server")

        mesh = RatlineMesh(work / "mesh", mesh_yaml(fortio), NO_ADDONS)
        quiet = RatlineMesh(work / "mesh-off", mesh_yaml(fortio) + TELEMETRY_OFF, NO_ADDONS)
        (quiet.dir / "mesh.yaml").write_text("enableTracing: false\n")
        try:
            off = quiet.up()
            off_url = f"http://127.0.0.1:{off['client']['sidecar']['outbound_port']}{path}"
            off_pids = [int(off["client"]["proxy_pid"]), int(off["server"]["proxy_pid"])]
            instances = mesh.up()
            client, server = instances["client"], instances["server"]
            ratline_url = f"http://127.0.0.1:{client['sidecar']['outbound_port']}{path}"
            ratline_pids = [int(client["proxy_pid"]), int(server["proxy_pid"])]
            collector = int(mesh.run_info()["runner_pid"])
            host = f"server:{SERVICE_PORT}"
            wait_for(lambda: _probe(fortio, ratline_url, host, work), 60, "traffic through (b)")
            wait_for(lambda: _probe(fortio, off_url, host, work), 60, "traffic through (b0)")
            ratline_tls = config_dump_has_tls(int(server["sidecar"]["admin_port"]))
            floor_tls = ratline_tls if tls == "auto" else tls == "on"

            certs = staticenvoy.make_certificates(work / "certs") if floor_tls else None
            c_listen, floor_pids = staticenvoy.start_floor(procs, settings.envoy, work, backend,
                                                           certs)
            floor_url = f"http://127.0.0.1:{c_listen}{path}"
            wait_for(lambda: _probe(fortio, floor_url, None, work), 30, "traffic through (c)")

            paths: dict[str, tuple[str, str | None, list[int]]] = {
                "direct": (f"http://127.0.0.1:{backend}{path}", None, []),
                "ratline": (ratline_url, host, ratline_pids),
                "ratline_telemetry_off": (off_url, host, off_pids),
                "static_envoy": (floor_url, None, floor_pids),
            }
            results: dict[str, list[dict[str, float]]] = {k: [] for k in paths}
            for run in range(size.runs):
                for key, (url, host_header, pids) in paths.items():
                    results[key].append(_one_load(
                        fortio, url, host_header, pids, size, work / f"{key}-{run}.json",
                        collector=collector if key == "ratline" else None,
                    ))
            scrape_cpu_ms = _scrape_cpu_ms(collector, [client, server])
            paced = _paced(fortio, paths, size, work)
        finally:
            mesh.down()
            quiet.down()
    medians = {k: _median_of(v) for k, v in results.items()}
    return {
        "load": size.__dict__,
        "response_bytes": RESPONSE_BYTES,
        "ratline_mtls": ratline_tls,
        "floor_mtls": floor_tls,
        "paths": medians,
        "runs": results,
        "p99_ratio_ratline_to_floor": medians["ratline"]["p99_ms"]
        / max(medians["static_envoy"]["p99_ms"], 1e-9),
        "p99_ratio_telemetry_on_to_off": medians["ratline"]["p99_ms"]
        / max(medians["ratline_telemetry_off"]["p99_ms"], 1e-9),
        "telemetry_p99_target": TELEMETRY_P99_TARGET,
        "collector_cpu_ms_per_1k": medians["ratline"].get("collector_cpu_ms_per_1k", 0.0),
        "scrape_cpu_ms_per_proxy": scrape_cpu_ms,
        "paced": paced,
    }


TELEMETRY_P99_TARGET = 1.10
"""Issue 11: p99 with telemetry on at most 1.10 times the same path with telemetry off."""


def _scrape_cpu_ms(collector: int, instances: list[dict[str, Any]], scrapes: int = 20,
                   cpu: Callable[[int], float] = cpu_seconds) -> float:
    """The agent's CPU for one merged `/stats/prometheus` of one proxy (what a Prometheus
    scrape costs it), averaged over `scrapes` rounds of every proxy."""
    before = cpu(collector)
    for _ in range(scrapes):
        for inst in instances:
            http_get(f"http://127.0.0.1:{inst['sidecar']['stats_port']}/stats/prometheus")
    return (cpu(collector) - before) * 1000 / (scrapes * len(instances))


PACED_QPS = 200


def _paced(fortio: str, paths: dict[str, tuple[str, str | None, list[int]]], size: LoadSize,
           work: Path) -> dict[str, Any]:
    """The same paths at one connection and a low rate: the latency one request sees
    when nothing else is in flight (interleaved runs, medians, as above)."""
    paced = LoadSize(qps=min(PACED_QPS, size.qps), connections=1, seconds=size.seconds,
                     runs=size.runs)
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in paths}
    for run in range(paced.runs):
        for key, (url, host_header, pids) in paths.items():
            runs[key].append(_one_load(fortio, url, host_header, pids, paced,
                                       work / f"{key}-paced-{run}.json"))
    return {"load": paced.__dict__, "paths": {k: _median_of(v) for k, v in runs.items()},
            "runs": runs}


def _probe(fortio: str, url: str, host: str | None, work: Path) -> bool:
    out = work / "probe.json"
    args = fortio_tool.load_args(fortio, url, 10, 1, 0.2, out, host)
    subprocess.run(args, capture_output=True, timeout=30, check=False)
    summary = fortio_tool.summarize(fortio_tool.read_result(out))
    return summary["requests"] > 0 and summary["errors"] == 0


def _one_load(fortio: str, url: str, host: str | None, pids: list[int], size: LoadSize,
              out: Path, cpu: Callable[[int], float] = cpu_seconds,
              collector: int | None = None) -> dict[str, float]:
    before = sum(cpu(p) for p in pids)
    collector_before = cpu(collector) if collector is not None else 0.0
    args = fortio_tool.load_args(fortio, url, size.qps, size.connections, size.seconds, out, host)
    subprocess.run(args, capture_output=True, timeout=size.seconds + 60, check=True)
    used = sum(cpu(p) for p in pids) - before
    summary = fortio_tool.summarize(fortio_tool.read_result(out))
    summary["proxy_cpu_ms_per_1k"] = used * 1000 / max(summary["requests"], 1) * 1000
    if collector is not None:
        collector_used = cpu(collector) - collector_before
        summary["collector_cpu_ms_per_1k"] = collector_used * 1000 / max(summary["requests"],
                                                                         1) * 1000
    return summary
