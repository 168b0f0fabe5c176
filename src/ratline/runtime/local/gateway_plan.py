"""Which gateway Envoys to run and which ports each serves: pure functions.

Gateways come from Istio's own declaration: a `Deployment` whose pod template has
`inject.istio.io/templates: gateway` (`ratline.api.gateway_deployment`), one Envoy per
replica, plus the built-in `istio-ingressgateway` in `istio-system` (the Bookinfo
example's front door), which a declared Deployment of that name and namespace replaces.

A gateway serves the server ports of the Gateways whose `spec.selector` matches its
labels. As in Istio, a server port is the port of the gateway's Service and the gateway
listens on that Service port's `targetPort` (the server port itself without a Service).
On one machine two gateways cannot both listen on 8080, so the runner gives every
declared gateway a free port per server port and reports it: a Service selecting the
gateway has that port as its endpoint, and translation binds the gateway's listener
there. The built-in ingress gateway keeps Istio's unprivileged rule (80 → 8080).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ratline.api.envelope import DEFAULT_NAMESPACE
from ratline.api.gateway_api import ISTIO_CLASSES, deployment_for
from ratline.api.gateway_deployment import (
    GatewayDeployment,
    GatewayDeploymentError,
    is_gateway_deployment,
    parse_gateway_deployment,
)

DEFAULT_GATEWAY = GatewayDeployment(
    name="istio-ingressgateway",
    namespace="istio-system",
    labels=(("app", "istio-ingressgateway"), ("istio", "ingressgateway")),
    service_account="istio-ingressgateway-service-account",
)
"""The ingress gateway every local mesh has."""

GatewayKey = tuple[str, str]
"""(namespace, instance name)."""


@dataclass(frozen=True)
class GatewayInstanceSpec:
    """One gateway Envoy to run: replica `index` of a gateway Deployment."""

    name: str
    index: int
    deployment: GatewayDeployment

    @property
    def namespace(self) -> str:
        return self.deployment.namespace

    @property
    def key(self) -> GatewayKey:
        return (self.namespace, self.name)

    @property
    def built_in(self) -> bool:
        """The default ingress gateway's name and namespace (Istio's port rule applies)."""
        d = self.deployment
        return (d.namespace, d.name) == (DEFAULT_GATEWAY.namespace, DEFAULT_GATEWAY.name)


@dataclass(frozen=True)
class ServerPort:
    """A Gateway server port one gateway serves and the container port behind it."""

    server_port: int
    target_port: int
    """The selecting Service's `targetPort` for that port (the server port without one)."""
    name: str = ""
    protocol: str = "TCP"


def desired_gateways(
    docs: Iterable[Mapping[str, Any]],
    gateway_api_docs: Iterable[Mapping[str, Any]] = (),
    classes: frozenset[str] = ISTIO_CLASSES,
) -> tuple[dict[GatewayKey, GatewayInstanceSpec], list[str]]:
    """Every gateway replica to run, by key (the built-in one included unless replaced);
    plus an error line per gateway Deployment that cannot be run. A Gateway API Gateway
    of a served class (`classes`) gets a deployment of its own (`<name>-istio`), as in
    Istio."""
    deployments = {(DEFAULT_GATEWAY.namespace, DEFAULT_GATEWAY.name): DEFAULT_GATEWAY}
    errors: list[str] = []
    for doc in gateway_api_docs:
        generated = deployment_for(doc, classes)
        if generated is not None:
            deployments[(generated.namespace, generated.name)] = generated
    for doc in docs:
        if not is_gateway_deployment(doc):
            continue
        try:
            deployment = parse_gateway_deployment(doc)
        except GatewayDeploymentError as exc:
            metadata = doc.get("metadata") or {}
            where = f"{metadata.get('namespace') or DEFAULT_NAMESPACE}/{metadata.get('name')}"
            errors.append(f"gateway Deployment {where}: {exc}")
            continue
        deployments[(deployment.namespace, deployment.name)] = deployment
    desired: dict[GatewayKey, GatewayInstanceSpec] = {}
    for deployment in deployments.values():
        for index in range(deployment.replicas):
            spec = GatewayInstanceSpec(f"{deployment.name}-{index}", index, deployment)
            desired[spec.key] = spec
    return desired, errors


def _selects(selector: Any, labels: Mapping[str, str]) -> bool:
    if not isinstance(selector, Mapping):
        return False
    return all(labels.get(str(k)) == str(v) for k, v in selector.items())


def server_ports(
    deployment: GatewayDeployment,
    gateway_docs: Iterable[Mapping[str, Any]],
    service_docs: Iterable[Mapping[str, Any]],
) -> list[ServerPort]:
    """The server ports of the Gateways selecting this gateway, with their target ports
    from the Services in its namespace that select it."""
    labels = deployment.label_map
    numbers: dict[int, str] = {}
    for doc in gateway_docs:
        spec = doc.get("spec") or {}
        if not _selects(spec.get("selector") or {}, labels):
            continue
        for server in spec.get("servers") or ():
            port = (server or {}).get("port") or {}
            number = port.get("number")
            if isinstance(number, int) and number > 0:
                numbers.setdefault(number, str(port.get("protocol") or "HTTP").upper())
    targets: dict[int, tuple[int, str]] = {}
    for doc in service_docs:
        metadata = doc.get("metadata") or {}
        spec = doc.get("spec") or {}
        namespace = metadata.get("namespace") or DEFAULT_NAMESPACE
        if namespace != deployment.namespace or not spec.get("selector"):
            continue
        if not _selects(spec.get("selector"), labels):
            continue
        for port in spec.get("ports") or ():
            number, target = port.get("port"), port.get("targetPort")
            if isinstance(number, int):
                chosen = target if isinstance(target, int) else number
                targets.setdefault(number, (chosen, str(port.get("name") or "")))
    return [
        ServerPort(number, *targets.get(number, (number, "")), protocol=protocol)
        for number, protocol in sorted(numbers.items())
    ]


__all__ = [
    "DEFAULT_GATEWAY",
    "GatewayInstanceSpec",
    "GatewayKey",
    "ServerPort",
    "desired_gateways",
    "server_ports",
]
