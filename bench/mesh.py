"""Generated meshes for benchmarks: Services on disk, instances reported over the admin API.

A mesh of N services has `endpoints_per_service` instances per service; each instance is
a sidecar whose node id a (real or simulated) proxy can connect as. Only proxies that are
really started need real ports; the others get placeholder port numbers.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.procs import ProcessGroup, free_port, http_get, http_send, wait_for
from ratline.registry.instances import InstancePort, SidecarPorts, WorkloadInstance

SERVICE_PORT = 8080
PLACEHOLDER_PORT_BASE = 40000


def service_name(index: int) -> str:
    return f"svc-{index:05d}"


def service_yaml(index: int, namespace: str = "default") -> str:
    name = service_name(index)
    return (
        "apiVersion: v1\nkind: Service\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\n"
        f"spec:\n  selector: {{app: {name}}}\n"
        f"  ports: [{{name: http, port: {SERVICE_PORT}, targetPort: {SERVICE_PORT}}}]\n"
    )


def write_services(mesh_dir: Path, count: int, start: int = 0) -> None:
    """One file holding `count` Services (fast to load, one config version)."""
    mesh_dir.mkdir(parents=True, exist_ok=True)
    docs = [service_yaml(i) for i in range(start, start + count)]
    (mesh_dir / f"services-{start}.yaml").write_text("---\n".join(docs))


@dataclass(frozen=True)
class PortsFor:
    """Real ports for an instance whose proxy will really run."""

    inbound: int
    outbound: int
    admin: int
    app: int

    @classmethod
    def fresh(cls, app_port: int | None = None) -> PortsFor:
        return cls(free_port(), free_port(), free_port(), app_port or free_port())


def instance(
    service_index: int, replica: int, ports: PortsFor | None = None, healthy: bool = True
) -> WorkloadInstance:
    name = service_name(service_index)
    n = service_index * 10 + replica
    if ports is None:
        fake = PLACEHOLDER_PORT_BASE + n % 20000
        ports = PortsFor(fake, fake, fake, fake)
    return WorkloadInstance(
        name=f"{name}-{replica}",
        namespace="default",
        workload=name,
        labels={"app": name},
        ports=(InstancePort(SERVICE_PORT, ports.app, ports.inbound, "http", "HTTP"),),
        sidecar=SidecarPorts(outbound_port=ports.outbound, admin_port=ports.admin),
        healthy=healthy,
    )


class ControlPlaneProcess:
    """`python -m ratline.controlplane` on a mesh directory, with its admin API client."""

    def __init__(self, procs: ProcessGroup, mesh_dir: Path, env: dict[str, str] | None = None):
        ready = mesh_dir / ".ratline" / "bench-ready.json"
        ready.unlink(missing_ok=True)
        # Simulated proxies speak plaintext gRPC; the data plane benchmark decides on mTLS.
        full_env = {**os.environ, "RATLINE_XDS_TLS": "0", **(env or {})}
        self.proc = procs.start(
            [sys.executable, "-m", "ratline.controlplane", "--mesh-dir", str(mesh_dir),
             "--ready-file", str(ready)],
            name=f"controlplane-{mesh_dir.name}",
            env=full_env,
        )
        info = wait_for(lambda: ready.is_file() and json.loads(ready.read_text()), 120,
                        "the control plane's ready file")
        self.pid = self.proc.pid
        self.xds_host, port = str(info["xds"]).rsplit(":", 1)
        self.xds_port = int(port)
        self.admin = f"http://{info['admin']}"
        self.xds_tls = bool(info.get("xds_tls", False))
        token_file = mesh_dir / ".ratline" / "admin-token"
        self.headers = (
            {"Authorization": f"Bearer {token_file.read_text().strip()}"}
            if token_file.is_file() else {}
        )

    def report(self, instances: list[WorkloadInstance], runner: str = "bench") -> None:
        self.send_report(report_body(instances, runner))

    def send_report(self, body: bytes) -> None:
        """PUT a report made by `report_body` (made ahead, so a timed change is only the
        control plane's work, not the bench encoding 5,000 instances)."""
        http_send(f"{self.admin}/v1/instances", body, "PUT", "application/json",
                  headers=self.headers)

    def apply(self, yaml_text: str) -> None:
        http_send(f"{self.admin}/v1/apply", yaml_text.encode(), "POST", "application/yaml",
                  headers=self.headers)

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(http_get(f"{self.admin}/v1/status", headers=self.headers))
        return data

    def proxy_status(self, nodes: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every proxy's status, or only those of `nodes` (a smaller answer to poll)."""
        query = "" if nodes is None else "?" + urllib.parse.urlencode([("node", n) for n in nodes])
        data = json.loads(
            http_get(f"{self.admin}/v1/proxy-status{query}", timeout=120, headers=self.headers)
        )
        proxies: list[dict[str, Any]] = data["proxies"]
        return proxies


def report_body(instances: list[WorkloadInstance], runner: str = "bench") -> bytes:
    """The body of a runner's report of `instances` (PUT /v1/instances)."""
    return json.dumps({"runner": runner, "instances": [i.to_json() for i in instances]}).encode()
