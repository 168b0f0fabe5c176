"""Every gateway Envoy of a local mesh: started, re-ported, stopped as the config says.

The runner hands each config version's resources to `GatewayFleet.reconcile`: gateway
Deployments (`runtime.local.gateway_plan.desired_gateways`) say which gateway Envoys
run, Gateways and Services which ports each serves. A new replica is enrolled with the
CA, given its admin and metrics ports and started; a removed or changed one is drained
and stopped. The built-in ingress gateway starts with the mesh, before any config.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ratline.api.gateway_api import is_served, served_classes, server_ports_doc
from ratline.api.kinds import KUBERNETES_GATEWAY
from ratline.observability.agent_http import ProxyMetricsPorts
from ratline.registry.instances import WorkloadInstance
from ratline.runtime.local.gateway import LocalGateway
from ratline.runtime.local.gateway_plan import (
    DEFAULT_GATEWAY,
    GatewayInstanceSpec,
    GatewayKey,
    desired_gateways,
    server_ports,
)
from ratline.runtime.local.ports import PortAllocator
from ratline.runtime.local.supervisor import RestartPolicy
from ratline.settings import Settings

log = logging.getLogger("ratline.runner")

GATEWAY_KIND = "Gateway"
SERVICE_KIND = "Service"
DEPLOYMENT_KIND = "Deployment"


class Enroller(Protocol):
    """The runner's security, as far as gateways need it."""

    def enroll(self, node_id: str, namespace: str, service_account: str, instance: str) -> None:
        ...

    async def forget(self, node_id: str) -> None: ...


@dataclass
class FleetContext:
    """What starting a gateway needs of the runner."""

    settings: Settings
    policy: RestartPolicy
    allocator: PortAllocator
    metrics: ProxyMetricsPorts
    proxies_dir: Path
    logs_dir: Path
    bootstrap_extra: Callable[[], Mapping[str, Any]]
    security: Callable[[], Enroller | None]
    on_change: Callable[[], None]


class GatewayFleet:
    """The running gateways by (namespace, instance name)."""

    def __init__(self, ctx: FleetContext) -> None:
        self.ctx = ctx
        self.gateways: dict[GatewayKey, LocalGateway] = {}
        self.errors: list[str] = []
        self.xds_port = 0

    @property
    def built_in(self) -> LocalGateway | None:
        """The ingress gateway `ratline up` prints the URLs of."""
        key = (DEFAULT_GATEWAY.namespace, f"{DEFAULT_GATEWAY.name}-0")
        return self.gateways.get(key)

    def all(self) -> list[LocalGateway]:
        return [self.gateways[key] for key in sorted(self.gateways)]

    async def start_built_in(self, xds_port: int) -> None:
        """The built-in ingress gateway, before any config is read."""
        self.xds_port = xds_port
        desired, _ = desired_gateways(())
        for spec in desired.values():
            await self._start(spec)

    async def reconcile(
        self, resources: Iterable[Mapping[str, Any]], drain_and_stop: StopGateways
    ) -> None:
        """Run the gateways the config declares, each serving its Gateways' ports."""
        by_kind: dict[str, list[Mapping[str, Any]]] = {}
        for item in resources:
            by_kind.setdefault(str(item.get("kind")), []).append(item.get("resource") or {})
        gateway_api = by_kind.get(KUBERNETES_GATEWAY, [])
        classes = served_classes(by_kind.get("GatewayClass", ()))
        desired, errors = desired_gateways(
            by_kind.get(DEPLOYMENT_KIND, ()), gateway_api, classes
        )
        if errors != self.errors:
            for error in errors:
                log.error("%s", error)
            self.errors = errors
        stopping = [
            self.gateways.pop(key)
            for key, gateway in list(self.gateways.items())
            if desired.get(key) != gateway.spec
        ]
        if stopping:
            for gateway in stopping:
                log.info("gateway %s.%s: stopping (Deployment changed or removed)",
                         gateway.name, gateway.namespace)
            await drain_and_stop(stopping)
            for gateway in stopping:
                await self._forget(gateway)
        for key, spec in sorted(desired.items()):
            if key not in self.gateways:
                await self._start(spec)
        gateway_docs = by_kind.get(GATEWAY_KIND, []) + [
            server_ports_doc(doc) for doc in gateway_api if is_served(doc, classes)
        ]
        service_docs = by_kind.get(SERVICE_KIND, [])
        for gateway in self.all():
            wanted = server_ports(gateway.spec.deployment, gateway_docs, service_docs)
            added, released = gateway.update_ports(wanted, self.ctx.allocator.allocate)
            for port in added:
                self.ctx.allocator.reserve(port)  # never hand a gateway's port to an app
            if not gateway.spec.built_in:
                self.ctx.allocator.release(released)

    async def _start(self, spec: GatewayInstanceSpec) -> None:
        ctx = self.ctx
        gateway = LocalGateway(
            spec,
            settings=ctx.settings,
            policy=ctx.policy,
            xds_port=self.xds_port,
            admin_port=ctx.allocator.allocate(),
            stats_port=ctx.allocator.allocate(),
            proxies_dir=ctx.proxies_dir,
            logs_dir=ctx.logs_dir,
            bootstrap_extra=ctx.bootstrap_extra(),
            on_change=ctx.on_change,
        )
        security = ctx.security()
        if security is not None:
            security.enroll(gateway.node_id, gateway.namespace, gateway.service_account,
                            gateway.name)
        self.gateways[spec.key] = gateway
        admin = f"{ctx.settings.bind_address}:{gateway.admin_port}"
        await ctx.metrics.add(gateway.stats_port, admin, gateway.peer)
        gateway.envoy.start()
        ctx.on_change()

    async def _forget(self, gateway: LocalGateway) -> None:
        ctx = self.ctx
        await ctx.metrics.remove(gateway.stats_port)
        ctx.allocator.release([gateway.admin_port, gateway.stats_port])
        if not gateway.spec.built_in:
            ctx.allocator.release(gateway.listen)
        security = ctx.security()
        if security is not None:
            await security.forget(gateway.node_id)

    def ready(self) -> bool:
        return all(g.envoy.ready.is_set() for g in self.gateways.values())

    def workload_instances(self) -> list[WorkloadInstance]:
        return [g.workload_instance() for g in self.all()]

    def run_info(self) -> list[dict[str, Any]]:
        return [g.run_info() for g in self.all()]

    def processes(self) -> list[tuple[int | None, str]]:
        return [(g.envoy.pid, f"gateway {g.name}.{g.namespace}") for g in self.all()]


StopGateways = Callable[[list[LocalGateway]], Awaitable[None]]
"""Drains and stops gateways' Envoys (the runner's, with its quiet period)."""
