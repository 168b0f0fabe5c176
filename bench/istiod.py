"""Istio's istiod (`pilot-discovery`) run without Kubernetes, for the side-by-side bench.

It reads the bench's config directory (`--configDir`, no registries), serves plaintext
xDS on a loopback port and its debug endpoints (`/debug/syncz`, `/metrics`) on another.
The settings a vanilla Envoy needs (see `../shared/notes/istiod-without-kubernetes.md`):
no metadata-exchange and ALPN filters (vanilla Envoy lacks them), no metrics provider,
and the mesh-wide PeerAuthentication DISABLE that `bench.istiomesh` writes. The sidecar's
catch-all listeners are moved off 15001/15006 to free ports (several Envoys share them
through SO_REUSEPORT, Envoy's default).

New ADS streams are rate-limited by default (`PILOT_MAX_REQUESTS_PER_SECOND`, 25 per
second on 2 cores): the bench raises the limit so that both control planes face the same
burst of proxies connecting at once (Ratline has no such limit); `RATE_LIMIT` says by how
much, and the report says so. Its gRPC keepalive timeout is raised too (`KEEPALIVE_TIMEOUT`:
on this shared 2-core machine the default tore down streams faster than istiod could sync
them at 2,000 proxies).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from bench.procs import ProcessGroup, free_port, http_get, wait_for

RATE_LIMIT = 100_000
"""PILOT_MAX_REQUESTS_PER_SECOND for the bench (default min(15 + 5 x cores, 100))."""
KEEPALIVE_TIMEOUT = "120s"
"""GRPC_KEEPALIVE_TIMEOUT for the bench (default 10 s; istiod pings every idle
connection after GRPC_KEEPALIVE_INTERVAL, 30 s). Measured here: with the default, at
2,000 delta proxies on 2 shared cores, istiod closed 5,772 streams in 11 minutes
(`Stream removed (Socket closed)`, `Connection reset by peer` at the client) and only 299
proxies were synced by then, every reconnect costing it a full push; at 120 s it closed
none and all 2,000 synced in 223 s."""
ISTIO_PROXY_VERSION = "1.31.0"
DEBOUNCE = {
    "file watch": "250 ms after the first change (pkg/kube/krt/files, fsnotify), then a "
                  "re-read of the whole directory",
    "push": "PILOT_DEBOUNCE_AFTER 100 ms quiet, PILOT_DEBOUNCE_MAX 10 s "
            "(EDS debounced too: PILOT_ENABLE_EDS_DEBOUNCE)",
}


def mesh_config(outbound_port: int, inbound_port: int) -> str:
    return (
        "rootNamespace: istio-system\n"
        "trustDomain: cluster.local\n"
        "enableTracing: false\n"
        f"proxyListenPort: {outbound_port}\n"
        f"proxyInboundListenPort: {inbound_port}\n"
    )


def node_metadata(name: str, namespace: str, ip: str, labels: dict[str, str]) -> dict[str, Any]:
    """The node metadata Istio's agent would send (what istiod reads of it)."""
    return {
        "NAMESPACE": namespace,
        "INSTANCE_IPS": ip,
        "ISTIO_VERSION": ISTIO_PROXY_VERSION,
        "CLUSTER_ID": "Kubernetes",
        "MESH_ID": "cluster.local",
        "WORKLOAD_NAME": name.rsplit("-", 1)[0],
        "NAME": name,
        "LABELS": dict(labels),
    }


class IstiodProcess:
    """pilot-discovery on a config directory; `pid`, `xds_host`, `xds_port` like Ratline's."""

    def __init__(self, procs: ProcessGroup, binary: Path, config_dir: Path, work: Path,
                 name: str = "istiod") -> None:
        self.xds_host = "127.0.0.1"
        self.xds_port = free_port()
        self.monitoring_port = free_port()
        self.outbound_port = free_port()
        self.inbound_port = free_port()
        mesh = work / "istiod-mesh.yaml"
        mesh.write_text(mesh_config(self.outbound_port, self.inbound_port))
        networks = work / "istiod-networks.yaml"
        networks.write_text("networks: {}\n")
        env = {
            **os.environ,
            "POD_NAMESPACE": "istio-system", "POD_NAME": "istiod-bench", "REVISION": "default",
            "PILOT_ENABLE_METADATA_EXCHANGE": "false",
            "PILOT_ENABLE_ALPN_FILTER": "false",
            "PILOT_MAX_REQUESTS_PER_SECOND": str(RATE_LIMIT),
            "GRPC_KEEPALIVE_TIMEOUT": KEEPALIVE_TIMEOUT,
        }
        args = [
            str(binary), "discovery", "--registries=", f"--configDir={config_dir}",
            f"--meshConfig={mesh}", f"--networksConfig={networks}",
            f"--grpcAddr={self.xds_host}:{self.xds_port}",
            f"--monitoringAddr=127.0.0.1:{self.monitoring_port}",
            f"--httpAddr=127.0.0.1:{free_port()}",
            "--secureGRPCAddr=", "--httpsAddr=", "--ctrlz_port=0",
            "--clusterID=Kubernetes", "--domain=cluster.local", "--shutdownDuration=1s",
        ]
        self.proc = procs.start(args, name=name, env=env)
        self.pid = self.proc.pid
        # It opens the xDS port only once its caches synced.
        wait_for(lambda: self._listening() or self.proc.poll() is not None, 120,
                 "istiod's xDS port")
        if self.proc.poll() is not None:
            raise RuntimeError(f"istiod exited with {self.proc.returncode} at start; see "
                               f"{procs.log_dir / (name + '.log')}")

    def _listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.xds_host, self.xds_port)) == 0

    def syncz(self) -> list[dict[str, Any]]:
        import json

        data: list[dict[str, Any]] = json.loads(
            http_get(f"http://127.0.0.1:{self.monitoring_port}/debug/syncz", timeout=60))
        return data

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.monitoring_port}/metrics").decode()
