"""Istio's gateway deployment: a Deployment whose pods get the `gateway` injection template.

Istio users declare a gateway (ingress or egress) as a Kubernetes `Deployment` whose pod
template carries the annotation `inject.istio.io/templates: gateway` (with
`sidecar.istio.io/inject: "true"`), labels such as `istio: egressgateway`, a service
account, and one container `istio-proxy` with `image: auto`; a `Service` selecting those
labels gives its ports. The local runtime runs each replica of such a Deployment as a
gateway Envoy (any other Deployment is reported as not run, RL0104). This module reads
one from its raw document; errors name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ratline.api.envelope import DEFAULT_NAMESPACE

TEMPLATES_ANNOTATION = "inject.istio.io/templates"
GATEWAY_TEMPLATE = "gateway"
DEPLOYMENT_KIND = "Deployment"


def unprivileged_port(server_port: int, offset: int) -> int:
    """Where a gateway pod listens for a server port: nothing binds below 1024 there, so
    a lower port is moved up by `offset` (`gateway_port_offset`: 80 → 8080)."""
    return server_port + offset if server_port < 1024 else server_port


class GatewayDeploymentError(ValueError):
    """A gateway Deployment the local runtime cannot run: `field` says where."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class GatewayDeployment:
    """What the local runtime runs of a gateway Deployment."""

    name: str
    namespace: str
    labels: tuple[tuple[str, str], ...]
    """The pod template's labels: what `Gateway.spec.selector` and Services match."""
    service_account: str = "default"
    replicas: int = 1

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def _template(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = doc.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    return template if isinstance(template, Mapping) else {}


def is_gateway_deployment(doc: Mapping[str, Any]) -> bool:
    """Whether a raw document is a Deployment whose pods Istio injects as a gateway."""
    if doc.get("kind") != DEPLOYMENT_KIND:
        return False
    metadata = _template(doc).get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return False
    templates = str(annotations.get(TEMPLATES_ANNOTATION) or "")
    return GATEWAY_TEMPLATE in [t.strip() for t in templates.split(",")]


def parse_gateway_deployment(doc: Mapping[str, Any]) -> GatewayDeployment:
    """A gateway Deployment's raw document → what to run. Raises GatewayDeploymentError."""
    metadata = doc.get("metadata") or {}
    spec = doc.get("spec") or {}
    template = _template(doc)
    pod_metadata = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    labels = pod_metadata.get("labels") if isinstance(pod_metadata, Mapping) else None
    if not isinstance(labels, Mapping) or not labels:
        raise GatewayDeploymentError(
            "spec.template.metadata.labels",
            "a gateway's pods need labels (Gateway.spec.selector selects them)",
        )
    text_labels = {str(k): str(v) for k, v in labels.items()}
    selector = spec.get("selector") if isinstance(spec, Mapping) else None
    match_labels = (selector or {}).get("matchLabels") if isinstance(selector, Mapping) else None
    if isinstance(match_labels, Mapping):
        for key, value in match_labels.items():
            if text_labels.get(str(key)) != str(value):
                raise GatewayDeploymentError(
                    "spec.selector.matchLabels",
                    f"{key}={value} does not match the template's labels",
                )
    replicas = spec.get("replicas", 1) if isinstance(spec, Mapping) else 1
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise GatewayDeploymentError("spec.replicas", f"{replicas!r} is not a count")
    account = pod_spec.get("serviceAccountName") if isinstance(pod_spec, Mapping) else None
    return GatewayDeployment(
        name=str(metadata.get("name") or ""),
        namespace=str(metadata.get("namespace") or DEFAULT_NAMESPACE),
        labels=tuple(sorted(text_labels.items())),
        service_account=str(account or "default"),
        replicas=replicas,
    )


__all__ = [
    "GatewayDeployment",
    "GatewayDeploymentError",
    "is_gateway_deployment",
    "parse_gateway_deployment",
]
