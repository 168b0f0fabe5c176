"""One gateway Envoy the runner runs: a replica of a gateway Deployment, or the built-in
`istio-ingressgateway` in `istio-system`.

One supervised Envoy (node `router~…`), the ports it listens on for the Gateway servers
that select it (`runtime.local.gateway_plan` says which), and what the runner reports of
it: a registry instance and its run.json entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ratline.agent.bootstrap import BootstrapParams
from ratline.api.gateway_deployment import unprivileged_port
from ratline.observability.peer_metadata import PeerMetadata
from ratline.registry.instances import (
    InstancePort,
    ProxyKind,
    SidecarPorts,
    WorkloadInstance,
    node_id,
)
from ratline.runtime.local.gateway_plan import GatewayInstanceSpec, ServerPort
from ratline.runtime.local.proxies import SupervisedEnvoy
from ratline.runtime.local.startup import WEB_PROTOCOLS
from ratline.runtime.local.supervisor import RestartPolicy
from ratline.settings import Settings, instance_log_name

log = logging.getLogger("ratline.runner")


class LocalGateway:
    """A gateway's Envoy and the ports it listens on."""

    def __init__(
        self,
        spec: GatewayInstanceSpec,
        *,
        settings: Settings,
        policy: RestartPolicy,
        xds_port: int,
        admin_port: int,
        proxies_dir: Path,
        stats_port: int = 0,
        logs_dir: Path,
        bootstrap_extra: Mapping[str, Any],
        on_change: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.namespace = spec.namespace
        self.labels = spec.deployment.label_map
        self.service_account = spec.deployment.service_account
        self.settings = settings
        self.admin_port = admin_port
        self.stats_port = stats_port
        """The agent's metrics port for the gateway (`/stats/prometheus`)."""
        self.node_id = node_id(ProxyKind.ROUTER, "127.0.0.1", self.name, self.namespace)
        self.ports: dict[int, tuple[ServerPort, int]] = {}
        """Server port → (what it is, the port listened on)."""
        workload = spec.deployment.name
        params = BootstrapParams(
            node_id=self.node_id,
            cluster=f"{workload}.{self.namespace}",
            xds_host=settings.bind_address,
            xds_port=xds_port,
            admin_port=admin_port,
            delta=settings.delta_xds,
            metadata={"NAMESPACE": self.namespace, "WORKLOAD_NAME": workload},
            **dict(bootstrap_extra),
        )
        self.envoy = SupervisedEnvoy(
            label=self.name,
            params=params,
            config_path=proxies_dir / f"{self.node_id}.json",
            log_path=logs_dir / instance_log_name(self.name, "envoy", self.namespace),
            access_log_path=logs_dir / instance_log_name(self.name, "access", self.namespace),
            settings=settings,
            policy=policy,
            on_change=on_change,
        )

    @property
    def listen(self) -> list[int]:
        return sorted(listen for _, listen in self.ports.values())

    @property
    def schemes(self) -> dict[int, str]:
        """`http`/`https` per listen port whose server speaks HTTP (URLs to open)."""
        return {
            listen: WEB_PROTOCOLS[server.protocol]
            for server, listen in self.ports.values()
            if server.protocol in WEB_PROTOCOLS
        }

    def update_ports(
        self, wanted: Iterable[ServerPort], allocate: Callable[[], int]
    ) -> tuple[list[int], list[int]]:
        """Serve these server ports; (ports newly listened on, ports given up). The
        built-in gateway listens by Istio's unprivileged rule (80 → 8080); a declared one
        on a port of its own per server port, kept while the server stays."""
        offset = self.settings.gateway_port_offset
        new: dict[int, tuple[ServerPort, int]] = {}
        for server in wanted:
            number = server.server_port
            if self.spec.built_in:
                listen = unprivileged_port(number, offset)
            elif number in self.ports:
                listen = self.ports[number][1]
            else:
                listen = allocate()
            new[number] = (server, listen)
        before = {listen for _, listen in self.ports.values()}
        after = {listen for _, listen in new.values()}
        if new != self.ports:
            self.ports = new
            if after:
                shown = ", ".join(
                    f"{number}→{self.settings.bind_address}:{listen}"
                    for number, (_, listen) in sorted(new.items())
                )
                log.info("gateway %s.%s listening: %s", self.name, self.namespace, shown)
        return sorted(after - before), sorted(before - after)

    @property
    def peer(self) -> PeerMetadata:
        """The gateway's identity to its peers (its node metadata)."""
        return PeerMetadata(self.name, self.namespace, self.spec.deployment.name,
                            dict(self.labels), self.service_account)

    def workload_instance(self) -> WorkloadInstance:
        """The gateway as the registry knows it: a declared gateway with its ports (a
        Service selecting it has them as endpoints) and where it listens for each."""
        ports: tuple[InstancePort, ...] = ()
        listen: tuple[tuple[int, int], ...] | None = None
        if not self.spec.built_in:
            ports = tuple(
                InstancePort(server.target_port, port, None, server.name, "TCP")
                for _, (server, port) in sorted(self.ports.items())
            )
            listen = tuple((number, port) for number, (_, port) in sorted(self.ports.items()))
        return WorkloadInstance(
            name=self.name,
            namespace=self.namespace,
            workload=self.spec.deployment.name,
            labels=dict(self.labels),
            service_account=self.service_account,
            ports=ports,
            sidecar=SidecarPorts(
                outbound_port=0, admin_port=self.admin_port, stats_port=self.stats_port
            ),
            kind=ProxyKind.ROUTER,
            healthy=self.envoy.ready.is_set(),
            proxy_pid=self.envoy.pid,
            gateway_listen=listen,
        )

    def run_info(self) -> dict[str, Any]:
        """Its entry in run.json."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "workload": self.spec.deployment.name,
            "labels": dict(self.labels),
            "built_in": self.spec.built_in,
            "admin_port": self.admin_port,
            "pid": self.envoy.pid,
            "listen": self.listen,
            "server_ports": {str(n): p for n, (_, p) in sorted(self.ports.items())},
            "schemes": {str(p): s for p, s in sorted(self.schemes.items())},
            "ready": self.envoy.ready.is_set(),
            "restarts": self.envoy.restarts,
            "error": self.envoy.error,
            "log": str(self.envoy.log_path),
            "access_log": str(self.envoy.access_log_path),
            "stats_port": self.stats_port,
        }
