"""The side-by-side fleet: the same proxies for istiod and for Ratline.

Every proxy is a client sidecar `fleet-NNNNN` in namespace `default` (node id in Istio's
form, the node metadata Istio's agent sends). None of them backs a service, so both
control planes send each the same thing: every service of the mesh, outbound. Most are
simulated (`bench.adsclient` worker processes); the first `real` are real Envoys, all
with the same bootstrap (`ratline.agent.bootstrap`, ADS to the control plane, delta or
state of the world) whichever control plane they reach. Ratline's Envoys also get the SDS
socket its agent would give them (`bench.sds`): Ratline's outbound clusters name their
mTLS secrets even under a mesh-wide PeerAuthentication DISABLE, and Envoy waits for them;
istiod sends none then (so Istio's agent, its SDS server, is not needed).

When a real Envoy has a change:
- an endpoint: the time of its `EDS hosts or locality weights changed for cluster: NAME`
  line (Envoy's `upstream` logger, turned to debug over the admin API for the change);
  Envoy's config dump keeps no update time for load assignments;
- a route or a new cluster: `last_updated` of that route configuration or cluster in its
  config dump, once the dump holds the change.
Both are when Envoy took the change in, by Envoy's own clock (the machine's).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import istiomesh
from bench.istiod import node_metadata
from bench.procs import ProcessGroup, free_port, http_get, http_send
from ratline.agent.bootstrap import BootstrapParams, build_bootstrap, envoy_args
from ratline.registry.instances import ProxyKind, SidecarPorts, WorkloadInstance, node_id

FLEET_LABELS = {"app": "fleet"}
EDS_LINE = re.compile(
    r"^\[(?P<stamp>[\d-]+ [\d:.]+)\].*EDS hosts or locality weights changed for cluster: "
    r"(?P<cluster>\S+) ")


@dataclass(frozen=True)
class FleetProxy:
    name: str
    real: bool
    outbound_port: int = 0
    admin_port: int = 0

    @property
    def node_id(self) -> str:
        return node_id(ProxyKind.SIDECAR, "127.0.0.1", self.name, istiomesh.NAMESPACE)

    @property
    def metadata(self) -> dict[str, Any]:
        return node_metadata(self.name, istiomesh.NAMESPACE, "127.0.0.1", FLEET_LABELS)

    def instance(self) -> WorkloadInstance:
        """The instance a runner reports to Ratline for this proxy (Ratline serves the
        proxies its registry knows, as istiod serves pods it knows from Kubernetes)."""
        ports = self.outbound_port or 1, self.admin_port or 1
        return WorkloadInstance(
            name=self.name, namespace=istiomesh.NAMESPACE, workload="fleet",
            labels=dict(FLEET_LABELS), sidecar=SidecarPorts(*ports),
        )


def make_fleet(proxies: int, real: int) -> list[FleetProxy]:
    fleet = []
    for i in range(proxies):
        if i < real:
            fleet.append(FleetProxy(f"fleet-{i:05d}", True, free_port(), free_port()))
        else:
            fleet.append(FleetProxy(f"fleet-{i:05d}", False))
    return fleet


class EnvoyFleet:
    """The real Envoys of a fleet, started against one control plane."""

    def __init__(self, procs: ProcessGroup, envoy: str, work: Path, proxies: list[FleetProxy],
                 xds_host: str, xds_port: int, delta: bool, sds_socket: str = "") -> None:
        self.proxies = [p for p in proxies if p.real]
        self.logs: dict[str, Path] = {}
        self.ready_at: dict[str, float] = {}
        self.pids: list[int] = []
        for p in self.proxies:
            params = BootstrapParams(
                node_id=p.node_id, cluster=f"fleet.{istiomesh.NAMESPACE}", xds_host=xds_host,
                xds_port=xds_port, admin_port=p.admin_port, delta=delta, sds_socket=sds_socket,
            )
            bootstrap = build_bootstrap(params)
            bootstrap["node"]["metadata"] = p.metadata
            path = work / f"envoy-{p.name}.json"
            path.write_text(json.dumps(bootstrap))
            name = f"envoy-{p.name}"
            proc = procs.start(envoy_args(envoy, str(path), concurrency=1, log_level="error"),
                               name=name)
            self.pids.append(proc.pid)
            self.logs[p.name] = procs.log_dir / f"{name}.log"

    def _admin(self, p: FleetProxy, path: str) -> bytes:
        return http_get(f"http://127.0.0.1:{p.admin_port}{path}", timeout=30)

    def poll_ready(self, now: float) -> bool:
        """Note the Envoys that are ready (`/ready` LIVE) at `now`; True once all are."""
        for p in self.proxies:
            if p.name in self.ready_at:
                continue
            try:
                if self._admin(p, "/ready").strip() == b"LIVE":
                    self.ready_at[p.name] = now
            except OSError:
                pass
        return len(self.ready_at) == len(self.proxies)

    def upstream_debug(self, on: bool) -> None:
        level = "debug" if on else "error"
        for p in self.proxies:
            http_send(f"http://127.0.0.1:{p.admin_port}/logging?paths=upstream:{level}", b"",
                      "POST", "text/plain")

    def log_offsets(self) -> dict[str, int]:
        return {name: path.stat().st_size for name, path in self.logs.items()}

    def changed_at(self, edit: istiomesh.Edit, since_wall: float,
                   offsets: dict[str, int]) -> dict[str, float]:
        """Envoy name → Unix time it took `edit` in, for those that did."""
        got: dict[str, float] = {}
        for p in self.proxies:
            if edit.kind == "endpoint":
                t = self._eds_changed(p, edit.detail["cluster"], since_wall, offsets[p.name])
            else:
                try:
                    dump = json.loads(self._admin(p, istiomesh.envoy_dump_query(edit)))
                except OSError:
                    continue
                t = istiomesh.envoy_has(edit, dump)
            if t is not None:
                got[p.name] = t
        return got

    def _eds_changed(self, p: FleetProxy, cluster: str, since_wall: float,
                     offset: int) -> float | None:
        with open(self.logs[p.name], "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        for line in text.splitlines():
            m = EDS_LINE.match(line)
            if m and m["cluster"] == cluster:
                # Envoy logs local time to the millisecond.
                t = datetime.strptime(m["stamp"], "%Y-%m-%d %H:%M:%S.%f").timestamp()
                if t >= since_wall - 0.002:
                    return t
        return None


def wall_to_monotonic(wall: float, wall0: float, mono0: float) -> float:
    return mono0 + (wall - wall0)


def now_pair() -> tuple[float, float]:
    """(Unix time, monotonic time) taken together."""
    return time.time(), time.monotonic()
