"""Workload instances as a runtime reports them: the registry's raw input from runners.

A runtime (the local runner today, a Kubernetes or multi-host one later) tells the
control plane which instances exist, where their apps and sidecars listen, and whether
they are healthy. These types are that contract; they are plain data and JSON-able.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Any


class ProxyKind(StrEnum):
    SIDECAR = "sidecar"
    ROUTER = "router"
    """A gateway: Envoy in router mode, no app behind it."""


@dataclass(frozen=True)
class InstancePort:
    """One container port of an instance and where traffic for it really goes."""

    container_port: int
    """The port the Workload declares (what Services' targetPort refers to)."""
    app_port: int
    """Where the app listens on 127.0.0.1 (its `PORT`)."""
    inbound_port: int | None = None
    """Where the sidecar accepts inbound traffic for this port; None without a sidecar."""
    name: str = ""
    protocol: str = "TCP"


@dataclass(frozen=True)
class LocalOutbound:
    """A local port on which an instance's sidecar listens for one service port.

    Local mode has no iptables to capture a connection to a service's address: an app
    reaches a TCP (or TLS, HTTP/2, gRPC) service port through its sidecar's port for it,
    which the runtime chose and told the app (`<SVC>_SERVICE_HOST`/`_PORT`).
    """

    hostname: str
    """The service: `tcp-echo.default.svc.cluster.local`, or a ServiceEntry host."""
    port: int
    """The service port."""
    local_port: int
    """Where the sidecar listens for it (on the bind address)."""


@dataclass(frozen=True)
class SidecarPorts:
    """The ports of an instance's own Envoy."""

    outbound_port: int
    """The HTTP proxy listener (the app's `HTTP_PROXY`)."""
    admin_port: int
    stats_port: int = 0
    """The agent's merged metrics port for this proxy (Istio's 15020); 0: none."""
    outbound: tuple[LocalOutbound, ...] = ()
    """Local outbound listeners, one per service port the app may call that way."""
    interception_mode: str = ""
    """The proxy's metadata INTERCEPTION_MODE: "REDIRECT" when iptables capture its app's
    traffic (virtualOutbound/virtualInbound instead of the HTTP_PROXY listener)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SidecarPorts:
        return cls(
            outbound_port=int(data["outbound_port"]),
            admin_port=int(data["admin_port"]),
            stats_port=int(data.get("stats_port") or 0),
            outbound=tuple(
                LocalOutbound(str(o["hostname"]), int(o["port"]), int(o["local_port"]))
                for o in data.get("outbound") or ()
            ),
            interception_mode=str(data.get("interception_mode") or ""),
        )


@dataclass(frozen=True)
class WorkloadInstance:
    """One running copy of a Workload (or a gateway proxy)."""

    name: str
    """Instance name, unique in its namespace: `reviews-v2-0`."""
    namespace: str
    workload: str
    """Name of the Workload resource it belongs to."""
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    address: str = "127.0.0.1"
    ports: tuple[InstancePort, ...] = ()
    sidecar: SidecarPorts | None = None
    kind: ProxyKind = ProxyKind.SIDECAR
    healthy: bool = True
    app_pid: int | None = None
    proxy_pid: int | None = None
    locality: str = ""
    """`region/zone/subzone` (or a prefix), e.g. from a Kubernetes pod's Node labels."""
    gateway_listen: tuple[tuple[int, int], ...] | None = None
    """A gateway's (server port, port it listens on) pairs, as its runtime bound them:
    translation binds a listener only for these. None: every server port by the
    unprivileged rule (80 → 8080), as the built-in ingress gateway and Kubernetes'."""
    listen_address: str = ""
    """Where a gateway's listeners bind: "" the control plane's bind address (local mode's
    proxies share the host), `0.0.0.0` for a gateway in its pod's own network namespace."""

    @cached_property
    def node_id(self) -> str:
        """The Envoy node id of this instance's proxy, in Istio's form."""
        return node_id(self.kind, self.address, self.name, self.namespace)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["labels"] = dict(self.labels)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkloadInstance:
        sidecar = data.get("sidecar")
        return cls(
            name=data["name"],
            namespace=data["namespace"],
            workload=data.get("workload", data["name"]),
            labels=dict(data.get("labels") or {}),
            service_account=data.get("service_account", "default"),
            address=data.get("address", "127.0.0.1"),
            ports=tuple(InstancePort(**p) for p in data.get("ports") or ()),
            sidecar=SidecarPorts.from_json(sidecar) if sidecar else None,
            kind=ProxyKind(data.get("kind", "sidecar")),
            healthy=bool(data.get("healthy", True)),
            app_pid=data.get("app_pid"),
            proxy_pid=data.get("proxy_pid"),
            locality=str(data.get("locality") or ""),
            gateway_listen=_pairs(data.get("gateway_listen")),
            listen_address=str(data.get("listen_address") or ""),
        )


def _pairs(value: Any) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    return tuple((int(a), int(b)) for a, b in value)


def node_id(kind: ProxyKind, address: str, name: str, namespace: str) -> str:
    """Istio's node id: `sidecar~127.0.0.1~reviews-v2-0.default~default.svc.cluster.local`."""
    return f"{kind.value}~{address}~{name}.{namespace}~{namespace}.svc.cluster.local"


def parse_node_id(value: str) -> tuple[ProxyKind, str, str, str]:
    """Inverse of `node_id`: (kind, address, name, namespace). Raises ValueError."""
    parts = value.split("~")
    if len(parts) != 4 or "." not in parts[2]:
        raise ValueError(f"not a Ratline node id: {value!r}")
    name, _, namespace = parts[2].rpartition(".")
    return ProxyKind(parts[0]), parts[1], name, namespace


class InstanceDecoder:
    """Decodes runners' reports, reusing the instance of an entry that did not change.

    A runner reports all its instances each time; decoding thousands of them per report
    made one endpoint change cost O(mesh) here. An entry equal (as JSON data) to the one
    last seen under the same name and namespace gives the same `WorkloadInstance`.
    """

    def __init__(self) -> None:
        self._last: dict[str, dict[tuple[str, str], tuple[Mapping[str, Any], WorkloadInstance]]]
        self._last = {}
        """runner → (name, namespace) → (its last entry, decoded)."""

    def decode(self, runner: str, entries: list[Mapping[str, Any]]) -> list[WorkloadInstance]:
        """One runner's report. Raises KeyError, TypeError or ValueError when malformed."""
        decoded = []
        last = self._last.get(runner, {})
        seen: dict[tuple[str, str], tuple[Mapping[str, Any], WorkloadInstance]] = {}
        for data in entries:
            key = (str(data["name"]), str(data["namespace"]))
            hit = last.get(key)
            if hit is not None and hit[0] == data:
                instance = hit[1]
            else:
                instance = WorkloadInstance.from_json(data)
            seen[key] = (data, instance)
            decoded.append(instance)
        self._last[runner] = seen
        return decoded
