"""The control plane on Kubernetes at scale: a real kube-apiserver, many Services and pods.

One run: etcd + kube-apiserver + kube-controller-manager (`tests.kube_cluster`, the
tests' own), Istio's CRDs (`scripts/tools/build-istio-files`; Ratline's without them),
`services` Services with `pods_per_service` pods each (made
through the API with their node set, then Running and Ready through the status
subresource, as a kubelet would; the controller-manager publishes the EndpointSlices),
then the control plane (`--kubeconfig`), then `proxies` simulated proxies (`bench.adsclient`,
node ids of pods). Measured:
- initial list to first push: the control plane's own figures (its initial lists, its first
  snapshot and translation), and from process start to serving;
- the fleet's initial sync;
- a pod turning Ready to every proxy's new EDS (p50/p99 over proxies; median of runs):
  the status write, the EndpointSlice controller's update, Ratline's watch and push;
- control plane RSS once synced.
With `istiod`, Istio's istiod (`bench.istiod_build`) is measured the same way after
Ratline, against the same API server and objects, with the same fleet.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kube_cluster import NODE_NAME, KubeCluster
from tests.tools import TOOLS_DIR

from bench.procs import ProcessGroup, cpu_seconds, free_port, memory_kib, wait_for
from bench.scale import Workers, latency_summary, median_run, percentile
from ratline.kube.connection import MERGE_PATCH, KubeConnection

NAMESPACE = "bench"
ISTIOD_NAMESPACE = "istiod-bench"
READY_RUNS = 3
CONCURRENCY = 16
REPO = Path(__file__).resolve().parents[1]
ISTIO_CRDS = TOOLS_DIR / "istio-files" / "manifests/charts/base/files/crd-all.gen.yaml"


@dataclass(frozen=True)
class KubeSize:
    services: int
    pods_per_service: int
    proxies: int
    workers: int = 2
    mode: str = "delta"
    istiod: bool = False
    """Measure istiod (`bench.istiod_build`) against the same API server, the same way."""

    @property
    def pods(self) -> int:
        return self.services * self.pods_per_service


def pod_ip(index: int) -> str:
    return f"10.{100 + index // 65536}.{index // 256 % 256}.{index % 256}"


def service_body(s: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": f"svc-{s}", "namespace": NAMESPACE},
        "spec": {"selector": {"app": f"svc-{s}"},
                 "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]},
    }


def pod_body(s: int, r: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"svc-{s}-{r}", "namespace": NAMESPACE,
                     "labels": {"app": f"svc-{s}", "version": "v1"}},
        "spec": {"nodeName": NODE_NAME, "serviceAccountName": "default",
                 "containers": [{"name": "app", "image": "bench",
                                 "ports": [{"containerPort": 8080}]}]},
    }


def pod_status(ip: str, ready: bool) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    flag = "True" if ready else "False"
    return {"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.0.2.1",
        "conditions": [{"type": t, "status": flag if t in ("Ready", "ContainersReady") else "True",
                        "lastTransitionTime": now}
                       for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
    }}


async def _bounded(jobs: list[Any]) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Any) -> None:
        async with gate:
            await job

    await asyncio.gather(*(one(j) for j in jobs))


async def populate(kubeconfig: Path, size: KubeSize) -> float:
    """Services and Running, Ready pods; returns the seconds it took."""
    started = time.monotonic()
    connection = await KubeConnection.from_kubeconfig(kubeconfig)
    try:
        await connection.request("POST", "/api/v1/namespaces", body={
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        await _bounded([connection.request(
            "POST", f"/api/v1/namespaces/{NAMESPACE}/services", body=service_body(s))
            for s in range(size.services)])
        pods = [(s, r) for r in range(size.pods_per_service) for s in range(size.services)]
        await _bounded([connection.request(
            "POST", f"/api/v1/namespaces/{NAMESPACE}/pods", body=pod_body(s, r))
            for s, r in pods])
        await _bounded([set_ready(connection, s, r, i, True) for i, (s, r) in enumerate(pods)])
    finally:
        await connection.close()
    return time.monotonic() - started


async def set_ready(connection: KubeConnection, s: int, r: int, index: int, ready: bool) -> None:
    await connection.request(
        "PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/svc-{s}-{r}/status",
        body=pod_status(pod_ip(index), ready), content_type=MERGE_PATCH)


def node_ids(size: KubeSize) -> list[str]:
    pods = [(s, r) for r in range(size.pods_per_service) for s in range(size.services)]
    return [f"sidecar~{pod_ip(i)}~svc-{s}-{r}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"
            for i, (s, r) in enumerate(pods)][: size.proxies]


def _ratline(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "ratline", *args], check=True,
                          capture_output=True, text=True, cwd=REPO).stdout


def run_kube(size: KubeSize, log_dir: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ratline-bench-kube-") as tmp:
        work = Path(tmp)
        cluster = KubeCluster.start(work / "cluster")
        try:
            with ProcessGroup(log_dir / f"kube-{size.services}-{size.pods}") as procs:
                return _measure(size, cluster, work, procs)
        finally:
            cluster.stop()


@dataclass
class UnderTest:
    """A control plane serving the cluster: its process and xDS address."""

    proc: subprocess.Popen[bytes]
    xds: str
    serving_s: float
    """From its start to serving xDS."""
    info: dict[str, Any]


def _start_ratline(cluster: KubeCluster, work: Path, procs: ProcessGroup) -> UnderTest:
    ready_file = work / "cp-ready.json"
    env = {**os.environ, "RATLINE_XDS_TLS": "0", "RATLINE_KUBE_WEBHOOK_PORT": "0",
           "RATLINE_READY_TIMEOUT_S": "600"}
    t0 = time.monotonic()
    cp = procs.start([sys.executable, "-m", "ratline.controlplane", "--kubeconfig",
                      str(cluster.admin_kubeconfig), "--state-dir", str(work / "state"),
                      "--ready-file", str(ready_file)], name="controlplane", env=env)
    wait_for(lambda: ready_file.exists() or cp.poll() is not None, 600,
             "the control plane's ready file", interval=0.1)
    if cp.poll() is not None:
        raise RuntimeError(f"the control plane exited {cp.returncode}; see {procs.log_dir}")
    info = json.loads(ready_file.read_text())
    return UnderTest(cp, info["xds"], time.monotonic() - t0, info)


def _start_istiod(cluster: KubeCluster, work: Path, procs: ProcessGroup) -> UnderTest:
    """istiod (`bench.istiod`'s build) with the same kubeconfig and Istio's own flags for a
    vanilla Envoy (`bench.istiod`); its own namespace, so its CA Secret is its own."""
    from bench.istiod import KEEPALIVE_TIMEOUT, RATE_LIMIT, mesh_config
    from bench.istiod_build import ensure_pilot_discovery

    binary = ensure_pilot_discovery()
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": ISTIOD_NAMESPACE}}))
    mesh = work / "istiod-mesh.yaml"
    mesh.write_text(mesh_config(free_port(), free_port()))
    networks = work / "istiod-networks.yaml"
    networks.write_text("networks: {}\n")
    xds = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "POD_NAMESPACE": ISTIOD_NAMESPACE, "POD_NAME": "istiod-bench",
           "REVISION": "default", "PILOT_ENABLE_METADATA_EXCHANGE": "false",
           "PILOT_ENABLE_ALPN_FILTER": "false",
           "PILOT_MAX_REQUESTS_PER_SECOND": str(RATE_LIMIT),
           "GRPC_KEEPALIVE_TIMEOUT": KEEPALIVE_TIMEOUT}
    t0 = time.monotonic()
    proc = procs.start([
        str(binary), "discovery", f"--kubeconfig={cluster.admin_kubeconfig}",
        "--registries=Kubernetes", f"--meshConfig={mesh}", f"--networksConfig={networks}",
        f"--grpcAddr={xds}", f"--monitoringAddr=127.0.0.1:{free_port()}",
        f"--httpAddr=127.0.0.1:{free_port()}", "--secureGRPCAddr=", "--httpsAddr=",
        "--ctrlz_port=0", "--clusterID=Kubernetes", "--domain=cluster.local",
        "--shutdownDuration=1s",
    ], name="istiod", env=env)

    def listening() -> bool:  # it opens its xDS port once its caches synced
        if proc.poll() is not None:
            raise RuntimeError(f"istiod exited {proc.returncode}; see {procs.log_dir}")
        with socket.socket() as s:
            s.settimeout(0.5)
            host, port = xds.rsplit(":", 1)
            return s.connect_ex((host, int(port))) == 0

    wait_for(listening, 600, "istiod's xDS port", interval=0.1)
    return UnderTest(proc, xds, time.monotonic() - t0, {})


def _measure(size: KubeSize, cluster: KubeCluster, work: Path,
             procs: ProcessGroup) -> dict[str, Any]:
    # Istio's own CRDs when the tests' tools have them (Ratline reads either set; istiod
    # needs Istio's), else Ratline's.
    crds = ISTIO_CRDS.read_text() if ISTIO_CRDS.exists() else _ratline("manifest", "crds")
    cluster.kubectl("apply", "--server-side", "-f", "-", stdin=crds)
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "Namespace",
                              "metadata": {"name": "istio-system"}}))
    populate_s = asyncio.run(populate(cluster.admin_kubeconfig, size))
    wait_for(lambda: _slices_ready(cluster, size), 600, "the EndpointSlices of every pod",
             interval=1.0)
    result: dict[str, Any] = {"size": {**size.__dict__, "pods": size.pods},
                              "populate_s": populate_s,
                              "crds": "istio" if ISTIO_CRDS.exists() else "ratline"}
    ratline = _start_ratline(cluster, work, procs)
    result.update(_fleet(size, cluster, procs, ratline, metadata=None))
    result["cp_initial_list_s"] = ratline.info["initial_list_s"]
    result["cp_first_push_s"] = ratline.info["first_push_s"]
    result["apiserver_rss_mib"] = cluster.rss_kib().get("kube-apiserver", 0) / 1024
    if size.istiod:
        try:
            istiod = _start_istiod(cluster, work, procs)
            result["istiod"] = _fleet(size, cluster, procs, istiod, metadata=_istio_metadata(size))
        except Exception as exc:  # the column is reported missing, with why
            result["istiod_error"] = f"{type(exc).__name__}: {exc}"
    return result


def _istio_metadata(size: KubeSize) -> dict[str, dict[str, Any]]:
    from bench.istiod import node_metadata

    out = {}
    for node in node_ids(size):
        _kind, ip, name_ns, _domain = node.split("~")
        name = name_ns.rsplit(".", 1)[0]
        out[node] = node_metadata(name, NAMESPACE, ip, {"app": name.rsplit("-", 1)[0],
                                                        "version": "v1"})
    return out


def _fleet(size: KubeSize, cluster: KubeCluster, procs: ProcessGroup, cp: UnderTest,
           metadata: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """The same fleet against one control plane: sync, Ready flips, RSS; then stopped."""
    rss_listed = memory_kib(cp.proc.pid)["rss"]
    t1 = time.monotonic()
    workers = Workers(procs, cp.xds, node_ids(size), size.workers, size.mode, set(),
                      metadata=metadata)
    try:
        stats = wait_for(
            lambda: (lambda st: st if all(d["synced_at"] for d in st.values()) else None)(
                workers.stats(time.monotonic())),
            600, "every simulated proxy to sync", interval=0.25)
        sync_times = [d["synced_at"] - t1 for d in stats.values()]
        out: dict[str, Any] = {
            "cp_start_to_serving_s": cp.serving_s,
            "fleet_initial_sync_p50_s": percentile(sync_times, 50),
            "fleet_initial_sync_max_s": max(sync_times),
            "cp_rss_listed_mib": rss_listed / 1024,
        }
        time.sleep(0.5)
        out["cp_rss_synced_mib"] = memory_kib(cp.proc.pid)["rss"] / 1024
        out["pod_ready_to_eds"] = median_run([
            _ready_run(cluster, workers, cp.proc.pid, size, n) for n in range(READY_RUNS)])
        out["cp_rss_end_mib"] = memory_kib(cp.proc.pid)["rss"] / 1024
        return out
    finally:
        for proc in workers.procs:
            procs.stop(proc)
        procs.stop(cp.proc)


def _slices_ready(cluster: KubeCluster, size: KubeSize) -> bool:
    slices = cluster.get_json("endpointslices", "-n", NAMESPACE)["items"]
    ready = sum(1 for s in slices for e in s.get("endpoints") or ()
                if (e.get("conditions") or {}).get("ready"))
    return ready >= size.pods


def _ready_run(cluster: KubeCluster, workers: Workers, cp_pid: int, size: KubeSize,
               n: int) -> dict[str, Any]:
    """Pod N+1 of service 1 (no proxy's own pod) goes unready, then Ready again: the
    latency of the Ready transition to every proxy's EDS."""
    s, r = 1 + n, size.pods_per_service - 1
    index = r * size.services + s

    async def flip(ready: bool) -> float:
        """When (monotonic) the status write was sent."""
        connection = await KubeConnection.from_kubeconfig(cluster.admin_kubeconfig)
        try:
            sent = time.monotonic()
            await set_ready(connection, s, r, index, ready)
            return sent
        finally:
            await connection.close()

    def every_proxy_eds_since(t: float) -> dict[str, float] | None:
        got = {}
        for node, data in workers.stats(t).items():
            hits = [e[0] for e in data["events"] if e[1] == "EDS"]
            if not hits:
                return None
            got[node] = min(hits) - t
        return got

    t_unready = asyncio.run(flip(False))
    wait_for(lambda: every_proxy_eds_since(t_unready), 120, "the unready pod in every EDS",
             interval=0.2)
    time.sleep(0.5)
    cpu0 = cpu_seconds(cp_pid)
    t0 = asyncio.run(flip(True))
    latencies = wait_for(lambda: every_proxy_eds_since(t0), 120,
                         "the Ready pod in every proxy's EDS", interval=0.2)
    return {"all": latency_summary(list(latencies.values())),
            "cp_cpu_s": cpu_seconds(cp_pid) - cpu0}


def kube_md(runs: list[dict[str, Any]]) -> list[str]:
    """The report's section."""
    out = [
        "## Control plane on Kubernetes",
        "",
        "A real kube-apiserver (etcd, kube-controller-manager for EndpointSlices; built from "
        "the Go module proxy), Istio's own CRDs (Ratline reads them as its own), the pods "
        "Running and Ready through the status "
        "subresource (no kubelet), then `python -m ratline.controlplane --kubeconfig`, then "
        "simulated proxies with pods' node ids. *Initial list*: the control plane's first "
        "list of every watched kind; *first snapshot*: its first snapshot of them (translation "
        "happens per proxy, in the fleet's sync); *pod Ready → EDS*: from the status write "
        "to each proxy's new EDS (the API server, the EndpointSlice controller, Ratline's "
        "watch and push), median of the runs' p99. istiod (`bench.istiod`'s build and "
        "flags for a vanilla Envoy) runs after Ratline against the same API server and "
        "objects, with the same fleet (Istio's node metadata) and the same Ready flips; its "
        "*start to serving* is until it opens its xDS port, which it does once its caches "
        "synced (its initial list).",
        "",
        "| control plane | services | pods | proxies | initial list s | first snapshot s "
        "| start to serving s | fleet sync p50 / max s | pod Ready → EDS p50 / p99 ms "
        "| CPU s per Ready | RSS MiB (synced) | apiserver RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        size = r["size"]
        rows = [("Ratline", r)] + ([("istiod", r["istiod"])] if "istiod" in r else [])
        for name, row in rows:
            ready = row["pod_ready_to_eds"]["all"]
            listed = (f"{r['cp_initial_list_s']:.2f} | {r['cp_first_push_s']:.2f}"
                      if name == "Ratline" else "- | -")
            out.append(
                f"| {name} | {size['services']} | {size['pods']} | {size['proxies']} "
                f"| {listed} | {row['cp_start_to_serving_s']:.2f} "
                f"| {row['fleet_initial_sync_p50_s']:.2f} / {row['fleet_initial_sync_max_s']:.2f} "
                f"| {ready['p50_ms']:.0f} / {ready['p99_ms']:.0f} "
                f"| {row['pod_ready_to_eds']['cp_cpu_s']:.2f} "
                f"| {row['cp_rss_synced_mib']:.0f} | {r['apiserver_rss_mib']:.0f} |"
            )
        if "istiod" in r:
            ri, ii = r["pod_ready_to_eds"]["all"], r["istiod"]["pod_ready_to_eds"]["all"]
            sync = r["fleet_initial_sync_max_s"] / r["istiod"]["fleet_initial_sync_max_s"]
            rss = r["cp_rss_synced_mib"] / r["istiod"]["cp_rss_synced_mib"]
            out += ["", f"Ratline / istiod, pod Ready → EDS p99: "
                    f"{ri['p99_ms'] / ii['p99_ms']:.2f}; fleet sync (max): {sync:.2f}; "
                    f"RSS: {rss:.2f}."]
        elif "istiod_error" in r:
            out += ["", f"istiod: not measured in this run ({r['istiod_error']})."]
        else:
            out += ["", "istiod: not measured at this size."]
    out.append("")
    return out
