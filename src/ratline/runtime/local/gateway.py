"""The ingress gateway the runner always runs: `istio-ingressgateway` in `istio-system`.

One supervised Envoy (node `router~…`), its listen ports from the Gateways that select it
(server ports below 1024 plus the offset, as Istio's unprivileged gateway), and what the
runner reports of it: a registry instance and its run.json entry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ratline.agent.bootstrap import BootstrapParams
from ratline.observability.peer_metadata import PeerMetadata
from ratline.registry.instances import ProxyKind, SidecarPorts, WorkloadInstance, node_id
from ratline.runtime.local.proxies import SupervisedEnvoy
from ratline.runtime.local.startup import gateway_schemes
from ratline.runtime.local.supervisor import RestartPolicy
from ratline.runtime.local.workloads import gateway_listen_ports
from ratline.settings import Settings, instance_log_name

log = logging.getLogger("ratline.runner")

GATEWAY_NAME = "istio-ingressgateway"
GATEWAY_INSTANCE = f"{GATEWAY_NAME}-0"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_LABELS = {"istio": "ingressgateway", "app": GATEWAY_NAME}
GATEWAY_SERVICE_ACCOUNT = f"{GATEWAY_NAME}-service-account"


class IngressGateway:
    """The gateway's Envoy and the ports it listens on."""

    def __init__(
        self,
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
        self.settings = settings
        self.admin_port = admin_port
        self.stats_port = stats_port
        """The agent's metrics port for the gateway (`/stats/prometheus`)."""
        self.node_id = node_id(ProxyKind.ROUTER, "127.0.0.1", GATEWAY_INSTANCE, GATEWAY_NAMESPACE)
        self.listen: list[int] = []
        self.schemes: dict[int, str] = {}
        params = BootstrapParams(
            node_id=self.node_id,
            cluster=f"{GATEWAY_NAME}.{GATEWAY_NAMESPACE}",
            xds_host=settings.bind_address,
            xds_port=xds_port,
            admin_port=admin_port,
            delta=settings.delta_xds,
            metadata={"NAMESPACE": GATEWAY_NAMESPACE, "WORKLOAD_NAME": GATEWAY_NAME},
            **dict(bootstrap_extra),
        )
        self.envoy = SupervisedEnvoy(
            label=GATEWAY_INSTANCE,
            params=params,
            config_path=proxies_dir / f"{self.node_id}.json",
            log_path=logs_dir / instance_log_name(GATEWAY_INSTANCE, "envoy"),
            access_log_path=logs_dir / instance_log_name(GATEWAY_INSTANCE, "access"),
            settings=settings,
            policy=policy,
            on_change=on_change,
        )

    def update_listen(self, gateway_docs: Iterable[Mapping[str, Any]]) -> list[int]:
        """Take the listen ports (and their URL schemes) from the Gateway documents."""
        docs = list(gateway_docs)
        offset = self.settings.gateway_port_offset
        listen = gateway_listen_ports(docs, GATEWAY_LABELS, offset)
        self.schemes = gateway_schemes(docs, GATEWAY_LABELS, offset)
        if listen != self.listen:
            self.listen = listen
            if listen:
                ports = ", ".join(f"{self.settings.bind_address}:{p}" for p in listen)
                log.info("gateway %s listening on %s", GATEWAY_INSTANCE, ports)
        return listen

    @property
    def peer(self) -> PeerMetadata:
        """The gateway's identity to its peers (its node metadata)."""
        return PeerMetadata(GATEWAY_INSTANCE, GATEWAY_NAMESPACE, GATEWAY_NAME,
                            dict(GATEWAY_LABELS), GATEWAY_SERVICE_ACCOUNT)

    def workload_instance(self) -> WorkloadInstance:
        """The gateway as the registry knows it."""
        return WorkloadInstance(
            name=GATEWAY_INSTANCE,
            namespace=GATEWAY_NAMESPACE,
            workload=GATEWAY_NAME,
            labels=dict(GATEWAY_LABELS),
            service_account=GATEWAY_SERVICE_ACCOUNT,
            sidecar=SidecarPorts(
                outbound_port=0, admin_port=self.admin_port, stats_port=self.stats_port
            ),
            kind=ProxyKind.ROUTER,
            healthy=self.envoy.ready.is_set(),
            proxy_pid=self.envoy.pid,
        )

    def run_info(self) -> dict[str, Any]:
        """Its entry in run.json."""
        return {
            "name": GATEWAY_INSTANCE,
            "namespace": GATEWAY_NAMESPACE,
            "admin_port": self.admin_port,
            "pid": self.envoy.pid,
            "listen": list(self.listen),
            "schemes": {str(p): s for p, s in sorted(self.schemes.items())},
            "ready": self.envoy.ready.is_set(),
            "restarts": self.envoy.restarts,
            "error": self.envoy.error,
            "log": str(self.envoy.log_path),
            "access_log": str(self.envoy.access_log_path),
            "stats_port": self.stats_port,
        }
