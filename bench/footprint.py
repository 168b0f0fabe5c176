"""Sidecar footprint: USS and config size of one sidecar in meshes of growing size.

Each mesh is started with `ratline up -d`: N Services, and one `client` Workload (an idle
process) whose sidecar is measured once it is ready and its config has settled. "Scoped"
adds an Istio `Sidecar` resource (translated by `ratline.translate.sidecar_scope`) limiting
the client's egress to 10 services, as a workload that calls ≤ 10 services would declare.
Baseline: a bare Envoy with a one-route static config. USS = Private_Clean + Private_Dirty
from /proc/PID/smaps_rollup; config size = bytes of the Envoy admin `/config_dump`.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import mesh as meshgen
from bench import staticenvoy
from bench.dataplane import RatlineMesh
from bench.procs import ProcessGroup, free_port, http_get, memory_kib, wait_for
from ratline.agent.bootstrap import envoy_args
from ratline.settings import Settings

SCOPED_EGRESS = 10
SETTLE_S = 1.0
LAUNCHES = 3
"""Each proxy is started this many times; the figure is the median launch."""

CLIENT_YAML = """apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata: {name: client, labels: {app: client}}
spec:
  replicas: 1
  command: [sleep, "100000"]
"""


def sidecar_yaml(egress: int) -> str:
    hosts = ", ".join(f"./{meshgen.service_name(i)}.default.svc.cluster.local"
                      for i in range(egress))
    return ("apiVersion: networking.istio.io/v1\nkind: Sidecar\n"
            "metadata: {name: client, namespace: default}\n"
            "spec:\n  workloadSelector: {labels: {app: client}}\n"
            f"  egress:\n  - hosts: [{hosts}]\n")


def _settled_dump(admin: int) -> bytes:
    """The config dump once two reads a moment apart agree in size."""
    last = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dump = http_get(f"http://127.0.0.1:{admin}/config_dump", timeout=30)
        if last and len(dump) == len(last):
            return dump
        last = dump
        time.sleep(SETTLE_S)
    return last


def measure_sidecar(services: int, scoped: bool, work: Path) -> dict[str, Any]:
    docs = [meshgen.service_yaml(i) for i in range(services)] + [CLIENT_YAML]
    if scoped:
        docs.append(sidecar_yaml(min(SCOPED_EGRESS, services)))
    mesh = RatlineMesh(work / f"mesh-{services}-{int(scoped)}", "---\n".join(docs), {},
                       workloads=("client",))
    try:
        client = mesh.up()["client"]
        admin = int(client["sidecar"]["admin_port"])
        dump = _settled_dump(admin)
        clusters = json.loads(http_get(f"http://127.0.0.1:{admin}/clusters?format=json"))
        mem = memory_kib(int(client["proxy_pid"]))
    finally:
        mesh.down()
    return {
        "services": services,
        "scoped": scoped,
        "uss_mib": mem["uss"] / 1024,
        "pss_mib": mem["pss"] / 1024,
        "rss_mib": mem["rss"] / 1024,
        "config_dump_bytes": len(dump),
        "clusters": len(clusters.get("cluster_statuses", [])),
    }


def measure_bare_envoy(settings: Settings, work: Path, log_dir: Path) -> dict[str, Any]:
    with ProcessGroup(log_dir / "footprint") as procs:
        # Two of them, measuring the first: as beside a mesh's other Envoys, the binary's
        # pages are then shared and not counted in USS (alone, USS would include them).
        for index in (1, 0):
            admin = free_port()
            cfg = work / f"bare-{index}.json"
            cfg.write_text(json.dumps(staticenvoy.one_route(free_port(), free_port(), admin)))
            proc = procs.start(envoy_args(settings.envoy, str(cfg), concurrency=1,
                                          log_level="warning"), name=f"bare-envoy-{index}")
        wait_for(lambda: http_get(f"http://127.0.0.1:{admin}/ready").strip() == b"LIVE", 30,
                 "the bare Envoy")
        dump = _settled_dump(admin)
        mem = memory_kib(proc.pid)
    return {"uss_mib": mem["uss"] / 1024, "pss_mib": mem["pss"] / 1024,
            "rss_mib": mem["rss"] / 1024, "config_dump_bytes": len(dump)}


def _median_launch(measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The launch with the median USS of `LAUNCHES` (a process's USS varies from one start
    to the next by a few MiB here), with every launch's USS beside it."""
    runs = sorted((measure() for _ in range(LAUNCHES)), key=lambda r: r["uss_mib"])
    chosen = dict(runs[len(runs) // 2])
    chosen["launches_uss_mib"] = [r["uss_mib"] for r in runs]
    return chosen


def run_footprint(sizes: list[int], settings: Settings, log_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ratline-bench-fp-") as tmp:
        work = Path(tmp)
        bare = _median_launch(lambda: measure_bare_envoy(settings, work, log_dir))
        rows = [
            _median_launch(lambda n=n, scoped=scoped: measure_sidecar(n, scoped, work))
            for n in sizes
            for scoped in (False, True)
        ]
    return {"bare_envoy": bare, "sidecars": rows, "scoped_egress": SCOPED_EGRESS,
            "launches": LAUNCHES}
