"""Every object of an install, rendered from values in Python (no `helm` needed).

These are the objects `helm template charts/ratline` renders for the same values (a test
proves it object for object with the real `helm`); the CRDs, RBAC and webhook rules
come from the same functions the control plane uses (`ratline.kube.crds`, `rbac`,
`webhook`, `injector_config`), and the chart's copies are generated from them
(`ratline.install.chart`). The control plane runs as Deployment `istiod` (Service
`istiod`, ServiceAccount `istiod`, ConfigMap `istio`, as Istio's, so Istio's tooling
and habits find them); the ingress gateway is a Deployment and a Service selected by
`istio: ingressgateway`, injected by the sidecar injector with its `gateway` template,
as Istio's gateway chart installs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from ratline.api.kinds import KINDS
from ratline.install.values import PARTS
from ratline.kube.config_store import MESH_CONFIG_KEY, MESH_CONFIG_MAP
from ratline.kube.crds import all_crds
from ratline.kube.injector_config import injector_configuration
from ratline.kube.rbac import SERVICE_ACCOUNT, rbac_manifests
from ratline.kube.webhook import webhook_configuration

CONTROL_PLANE = "istiod"
"""The control plane's Deployment and Service (Istio's names)."""
PART_OF = {"app.kubernetes.io/part-of": "ratline"}
STATE_DIR = "/var/lib/ratline"
PROXY_UID = 1337

PORTS: dict[str, int] = {
    "grpc-xds": 15012,
    "https-ca": 15013,
    "http-admin": 15014,
    "https-webhook": 15017,
}
"""The control plane's ports: xDS (mTLS), the CSR endpoint, the admin API and dashboard
(`/healthz` is its readiness), the admission webhooks (the Service's 443)."""


def _image(values: Mapping[str, Any]) -> str:
    return f"{values['image']['repository']}:{values['image']['tag']}"


def _controlplane_env(namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    image = _image(values)
    env = {
        "RATLINE_BIND_ADDRESS": "0.0.0.0",
        "RATLINE_XDS_PORT": str(PORTS["grpc-xds"]),
        "RATLINE_CA_PORT": str(PORTS["https-ca"]),
        "RATLINE_ADMIN_PORT": str(PORTS["http-admin"]),
        "RATLINE_KUBE_WEBHOOK_PORT": str(PORTS["https-webhook"]),
        "RATLINE_KUBE_WEBHOOK_SERVICE": CONTROL_PLANE,
        "RATLINE_KUBE_NAMESPACE": namespace,
        # What injected pods get: this image, the control plane by its Service.
        "RATLINE_KUBE_PROXY_IMAGE": image,
        "RATLINE_KUBE_INJECTED_XDS_ADDRESS": f"{CONTROL_PLANE}.{namespace}.svc:{PORTS['grpc-xds']}",
        "RATLINE_KUBE_INJECTED_CA_ADDRESS": f"{CONTROL_PLANE}.{namespace}.svc:{PORTS['https-ca']}",
        **dict(values.get("env") or {}),
    }
    return [{"name": k, "value": env[k]} for k in sorted(env)]


def base(namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The CRDs and the validating webhook (without caBundle: the control plane's)."""
    validator = webhook_configuration(namespace, KINDS, "", service=CONTROL_PLANE)
    webhook = validator["webhooks"][0]
    if values["validationURL"]:
        webhook["clientConfig"] = {"url": values["validationURL"]}
    else:
        del webhook["clientConfig"]["caBundle"]
    return [*all_crds(), validator]


def _deployment(namespace: str, values: Mapping[str, Any]) -> dict[str, Any]:
    labels = {"app": CONTROL_PLANE, "istio": "pilot"}
    container = {
        "name": "discovery",
        "image": _image(values),
        "imagePullPolicy": values["image"]["pullPolicy"],
        "args": ["controlplane", "--state-dir", STATE_DIR],
        "env": _controlplane_env(namespace, values),
        "ports": [
            {"name": name, "containerPort": port, "protocol": "TCP"} for name, port in PORTS.items()
        ],
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": PORTS["http-admin"]},
            "initialDelaySeconds": 1,
            "periodSeconds": 3,
        },
        "resources": values["resources"],
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": [
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},  # the TLS loader's files; root is read-only
        ],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": CONTROL_PLANE,
            "namespace": namespace,
            "labels": {**labels, **PART_OF},
        },
        "spec": {
            "replicas": values["replicaCount"],
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, "sidecar.istio.io/inject": "false"}},
                "spec": {
                    "serviceAccountName": SERVICE_ACCOUNT,
                    "containers": [container],
                    "volumes": [{"name": "state", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                },
            },
        },
    }


def _service(namespace: str) -> dict[str, Any]:
    ports = []
    for name, port in PORTS.items():
        exposed = 443 if name == "https-webhook" else port
        ports.append({"name": name, "port": exposed, "protocol": "TCP", "targetPort": port})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": CONTROL_PLANE,
            "namespace": namespace,
            "labels": {"app": CONTROL_PLANE, "istio": "pilot", **PART_OF},
        },
        "spec": {"selector": {"app": CONTROL_PLANE, "istio": "pilot"}, "ports": ports},
    }


def mesh_config_text(values: Mapping[str, Any]) -> str:
    """The ConfigMap's `mesh` key: the values' meshConfig as YAML (keys sorted)."""
    return yaml.safe_dump(dict(values.get("meshConfig") or {}), sort_keys=True)


def controlplane(namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RBAC, the MeshConfig ConfigMap, Deployment and Service, the injection webhook."""
    mesh = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": MESH_CONFIG_MAP, "namespace": namespace, "labels": dict(PART_OF)},
        "data": {MESH_CONFIG_KEY: mesh_config_text(values)},
    }
    injector = injector_configuration(namespace, "", service=CONTROL_PLANE)
    for webhook in injector["webhooks"]:  # they share one clientConfig: one each
        if values["injectionURL"]:
            webhook["clientConfig"] = {"url": values["injectionURL"]}
        else:
            client = webhook["clientConfig"]
            webhook["clientConfig"] = {k: v for k, v in client.items() if k != "caBundle"}
    return [
        *rbac_manifests(namespace),
        mesh,
        _deployment(namespace, values),
        _service(namespace),
        injector,
    ]


def gateways(namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ingress gateway: ServiceAccount, Deployment (injected), Service."""
    name = values["name"]
    labels = dict(values["labels"])
    meta = {"name": name, "namespace": namespace, "labels": {**labels, **PART_OF}}
    service_spec: dict[str, Any] = {
        "type": values["service"]["type"],
        "selector": labels,
        "ports": values["service"]["ports"],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(meta)},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": dict(meta),
            "spec": {
                "replicas": values["replicaCount"],
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "annotations": {"inject.istio.io/templates": "gateway"},
                        "labels": {**labels, "sidecar.istio.io/inject": "true"},
                    },
                    "spec": {
                        "serviceAccountName": name,
                        "containers": [
                            {
                                "name": "istio-proxy",
                                "image": "auto",
                                "resources": values["resources"],
                            }
                        ],
                    },
                },
            },
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": dict(meta), "spec": service_spec},
    ]


RENDERERS = {"base": base, "controlplane": controlplane, "gateways": gateways}


def render(namespace: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every enabled part's objects, in install order (base, control plane, gateways)."""
    objects: list[dict[str, Any]] = []
    for part in PARTS:
        part_values = values[part]
        if part_values.get("enabled", True):
            objects += RENDERERS[part](namespace, part_values)
    return objects
