"""Istio's automated deployment of Gateway API Gateways, in a cluster (the leader's work).

For each Gateway API `Gateway` of a class Ratline serves (`istio`, or a GatewayClass of
Istio's `controllerName`), the leader keeps three objects named `<gateway>-istio` in the
Gateway's namespace, as istiod's gateway controller does:

- a ServiceAccount (the gateway's SPIFFE identity);
- a Deployment of one pod carrying the labels the Gateway's converted Istio Gateways
  select (`ratline.api.gateway_api.deployment_for`), with the `istio-proxy` container
  left to the injector's `gateway` template (`image: auto`), like the chart's gateway;
- a Service (`LoadBalancer`, as Istio's) with a port per listener, whose targetPort is
  where the pod listens: the listener's port, or port + `gateway_port_offset` below 1024
  (nothing binds below 1024 in the pod), and the status port 15021.

Each is owned by its Gateway (`ownerReferences`, `controller: true`), so Kubernetes'
garbage collector deletes them with it, even while no control plane runs. An object
whose Gateway left the served classes is deleted by the leader. Writes are server-side
applies with Ratline's field manager, sent only when what the leader wants differs from
what it last applied (after a restart everything is applied once again: idempotent).

`gateway_objects` is pure; `GatewayDeployer` is the thin loop around it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ratline.api.envelope import ResourceKey
from ratline.api.gateway_api import deployment_for, served_classes, server_ports_doc
from ratline.api.gateway_deployment import (
    GATEWAY_TEMPLATE,
    TEMPLATES_ANNOTATION,
    unprivileged_port,
)
from ratline.api.kinds import KUBERNETES_GATEWAY
from ratline.kube.connection import APPLY_PATCH, FIELD_MANAGER, KubeApiError, KubeConnection
from ratline.kube.objects import ClusterObject
from ratline.kube.reconcile import Reconciler
from ratline.kube.resources import DEPLOYMENT, SERVICE, SERVICE_ACCOUNT, ResourceType

log = logging.getLogger("ratline.kube.gateway_deployments")

STATUS_PORT = 15021
INJECT_LABEL = "sidecar.istio.io/inject"
TYPES: Mapping[str, ResourceType] = {
    "ServiceAccount": SERVICE_ACCOUNT,
    "Deployment": DEPLOYMENT,
    "Service": SERVICE,
}
"""The kinds of a Gateway's deployment, in the order they are applied."""
RETRY_S = 2.0


def _owner(gateway: ClusterObject) -> dict[str, Any]:
    return {
        "apiVersion": str(gateway.body.get("apiVersion") or "gateway.networking.k8s.io/v1"),
        "kind": "Gateway",
        "name": gateway.name,
        "uid": gateway.uid,
        "controller": True,
    }


def service_ports(gateway_doc: Mapping[str, Any], port_offset: int) -> list[dict[str, Any]]:
    """The Service's ports: the status port and one per listener port Ratline serves."""
    ports = [{"name": "status-port", "port": STATUS_PORT, "protocol": "TCP",
              "targetPort": STATUS_PORT}]
    seen = {STATUS_PORT}
    for server in server_ports_doc(gateway_doc)["spec"]["servers"]:
        port, protocol = server["port"]["number"], server["port"]["protocol"]
        if port in seen:
            continue
        seen.add(port)
        ports.append({
            "name": f"{protocol.lower()}-{port}",
            "port": port,
            "protocol": "TCP",
            "targetPort": unprivileged_port(port, port_offset),
        })
    return ports


def gateway_objects(
    gateway: ClusterObject, classes: frozenset[str], port_offset: int
) -> list[dict[str, Any]]:
    """The ServiceAccount, Deployment and Service a Gateway gets (none: not served)."""
    deployment = deployment_for(gateway.body, classes)
    if deployment is None:
        return []
    labels = dict(deployment.labels)
    metadata = {
        "name": deployment.name,
        "namespace": gateway.namespace,
        "labels": labels,
        "ownerReferences": [_owner(gateway)],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": {**labels, INJECT_LABEL: "true"},
                        "annotations": {TEMPLATES_ANNOTATION: GATEWAY_TEMPLATE},
                    },
                    "spec": {
                        "serviceAccountName": deployment.service_account,
                        "containers": [{"name": "istio-proxy", "image": "auto"}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata,
            "spec": {
                "type": "LoadBalancer",
                "selector": labels,
                "ports": service_ports(gateway.body, port_offset),
            },
        },
    ]


def wanted_objects(
    objects: Mapping[ResourceKey, ClusterObject], port_offset: int
) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(kind, namespace, name) → the object, for every served Gateway of the cluster."""
    classes = served_classes(o.body for k, o in objects.items() if k.kind == "GatewayClass")
    wanted: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key, obj in sorted(objects.items()):
        if key.kind != KUBERNETES_GATEWAY:
            continue
        for body in gateway_objects(obj, classes, port_offset):
            wanted[(body["kind"], obj.namespace, body["metadata"]["name"])] = body
    return wanted


class GatewayDeployer(Reconciler):
    """Keeps every served Gateway's deployment applied, until cancelled."""

    what = "gateway deployments"

    def __init__(
        self,
        connection: KubeConnection,
        objects: Callable[[], Mapping[ResourceKey, ClusterObject]],
        port_offset: int,
    ) -> None:
        super().__init__(retry_s=RETRY_S)
        self.connection = connection
        self.objects = objects
        """The cluster's config objects as last seen (`KubeConfigStore.objects`)."""
        self.port_offset = port_offset
        self.applied: dict[tuple[str, str, str], str] = {}
        """What was last applied, as JSON, by (kind, namespace, name)."""

    async def reconcile(self) -> None:
        wanted = wanted_objects(self.objects(), self.port_offset)
        order = list(TYPES)
        for key in sorted(wanted, key=lambda k: (order.index(k[0]), k[1], k[2])):
            text = json.dumps(wanted[key], sort_keys=True)
            if self.applied.get(key) == text:
                continue
            kind, namespace, name = key
            await self.connection.request(
                "PATCH",
                TYPES[kind].object_path(namespace, name),
                query={"fieldManager": FIELD_MANAGER, "force": "true"},
                body=wanted[key],
                content_type=APPLY_PATCH,
            )
            log.info("gateway deployment: applied %s %s/%s", kind, namespace, name)
            self.applied[key] = text
        for key in [k for k in self.applied if k not in wanted]:
            kind, namespace, name = key
            try:
                await self.connection.request("DELETE", TYPES[kind].object_path(namespace, name))
            except KubeApiError as exc:
                if exc.status != 404:
                    raise
            log.info("gateway deployment: deleted %s %s/%s", kind, namespace, name)
            del self.applied[key]
