"""Sidecar injection, sans IO: a Pod in, the injected Pod and its JSON patch out.

The mutating webhook (`ratline.kube.webhook`, `POST /inject`) and `ratline kube-inject`
both call `inject`. The namespace-level choice (`istio-injection=enabled`, `istio.io/rev`)
is the webhook configuration's selectors (`ratline.kube.injector_config`); here the pod's
own: `sidecar.istio.io/inject: "false"` (label or annotation), the host network, Istio's
ignored namespaces and pods already injected are left alone.

An injected pod gets, as Istio's native-sidecar injection gives it:
- init container `istio-init`: `ratline iptables …` with NET_ADMIN/NET_RAW, the capture
  from `traffic.sidecar.istio.io/*` annotations;
- init container `istio-proxy` with `restartPolicy: Always` (a native sidecar: it runs
  beside the app, and a Job's pod completes when its app containers do): `ratline agent`
  as UID 1337, the pod's identity from the downward API, `PROXY_CONFIG` (the mesh's
  defaultConfig merged with `proxy.istio.io/config`), readiness on 15021, and, when
  `holdApplicationUntilProxyStarts` (Ratline's default: on), a startup probe, so the
  kubelet starts the app only once the proxy is ready;
- volumes: the projected service-account token (audience `istio-ca`), the mesh CA root
  ConfigMap `istio-ca-root-cert`, an emptyDir for the SDS socket and one for the
  bootstrap, the pod's labels and annotations (downward API);
- app probes through the agent (`ratline.kube.probes`), the `sidecar.istio.io/status`
  annotation, `security.istio.io/tlsMode: istio` and Prometheus' scrape annotations.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.agent.capture import (
    AGENT_HEALTH_PORT,
    AGENT_METRICS_PORT,
    ALL,
    DEFAULT_EXCLUDED_INBOUND,
    ENVOY_PROMETHEUS_PORT,
    PROXY_UID,
    CaptureConfig,
    CaptureConfigError,
    capture_args,
    parse_ports,
    parse_ranges,
)
from ratline.kube.injection_annotations import (
    INJECT,
    STATUS,
    InjectionError,
    proxy_config,
    proxy_resources,
)
from ratline.kube.pods import PROXY_CONTAINER
from ratline.kube.probes import PROBERS_ENV, rewrite_probes

INIT_CONTAINER = "istio-init"
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})
CA_ROOT_CONFIGMAP = "istio-ca-root-cert"
TOKEN_AUDIENCE = "istio-ca"
TOKEN_DIR = "/var/run/secrets/tokens"
CA_ROOT_DIR = "/var/run/secrets/istio"
SOCKET_DIR = "/var/run/secrets/workload-spiffe-uds"
PROXY_DIR = "/etc/istio/proxy"
PODINFO_DIR = "/etc/istio/pod"
TRAFFIC = "traffic.sidecar.istio.io/"
REWRITE_PROBES = "sidecar.istio.io/rewriteAppHTTPProbers"
TEMPLATES = "inject.istio.io/templates"


@dataclass(frozen=True)
class InjectionParams:
    """What the control plane (or `kube-inject`) knows that the pod does not."""

    image: str
    xds_address: str
    """`host:port` of the control plane's xDS server, as pods reach it."""
    ca_address: str
    """`host:port` of its CSR endpoint."""
    mesh_proxy_config: Mapping[str, Any] = field(default_factory=dict)
    """MeshConfig `defaultConfig` (camelCase JSON)."""
    revision: str = "default"
    proxy_cpu: str = "100m"
    proxy_memory: str = "128Mi"
    cluster_id: str = "Kubernetes"


@dataclass
class Injected:
    pod: dict[str, Any]
    patch: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    reason: str = ""
    """Why nothing was injected ("" when it was)."""


def _metadata(pod: Mapping[str, Any]) -> dict[str, Any]:
    return dict(pod.get("metadata") or {})


def _opted_out(value: Any) -> bool:
    return str(value).strip().lower() in ("false", "n", "no", "0", "off")


def skip_reason(pod: Mapping[str, Any], namespace: str) -> str:
    """Why this pod is not injected, or "" when it is to be."""
    meta = _metadata(pod)
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    if STATUS in annotations:
        return "already injected"
    if any(_opted_out(m[INJECT]) for m in (labels, annotations) if INJECT in m):
        return f"{INJECT}: false"
    if (pod.get("spec") or {}).get("hostNetwork"):
        return "the pod uses the host network"
    if "gateway" in str(annotations.get(TEMPLATES, "")).split(","):
        return "a gateway template (Ratline injects sidecars only)"
    if namespace in IGNORED_NAMESPACES:
        return f"namespace {namespace} is never injected"
    return ""


def capture_config(annotations: Mapping[str, str]) -> CaptureConfig:
    """The capture the pod's `traffic.sidecar.istio.io/*` annotations ask for."""

    def get(name: str, default: str) -> str:
        return str(annotations.get(TRAFFIC + name, default))

    try:
        include_ranges = get("includeOutboundIPRanges", ALL)
        parse_ranges(include_ranges, "includeOutboundIPRanges")
        include_inbound = get("includeInboundPorts", ALL)
        if include_inbound.strip() != ALL:
            parse_ports(include_inbound, "includeInboundPorts")
        excluded_inbound = parse_ports(get("excludeInboundPorts", ""), "excludeInboundPorts")
        return CaptureConfig(
            include_outbound_ranges=include_ranges,
            exclude_outbound_ranges=parse_ranges(
                get("excludeOutboundIPRanges", ""), "excludeOutboundIPRanges"
            ),
            include_inbound_ports=include_inbound,
            exclude_inbound_ports=tuple(
                dict.fromkeys([*DEFAULT_EXCLUDED_INBOUND, *excluded_inbound])
            ),
            exclude_outbound_ports=parse_ports(
                get("excludeOutboundPorts", ""), "excludeOutboundPorts"
            ),
            include_outbound_ports=parse_ports(
                get("includeOutboundPorts", ""), "includeOutboundPorts"
            ),
        )
    except CaptureConfigError as exc:
        raise InjectionError(f"metadata.annotations[{TRAFFIC}{exc}") from None


def _field_env(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def _app_containers(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [dict(c) for c in spec.get("containers") or ()]


def _pod_ports(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: p[k] for k in ("name", "containerPort", "protocol") if k in p}
        for c in containers
        for p in c.get("ports") or ()
    ]


def _init_container(params: InjectionParams, capture: CaptureConfig,
                    resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": INIT_CONTAINER,
        "image": params.image,
        "command": ["ratline", "iptables", *capture_args(capture)],
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": False,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "runAsUser": 0,
        },
    }


def _health_probe(**extra: Any) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/healthz/ready", "port": AGENT_HEALTH_PORT, "scheme": "HTTP"},
        **extra,
    }


def _proxy_container(
    params: InjectionParams,
    pod: Mapping[str, Any],
    config: dict[str, Any],
    probers: dict[str, Any],
    resources: dict[str, Any],
    app: list[dict[str, Any]],
) -> dict[str, Any]:
    meta = _metadata(pod)
    labels = meta.get("labels") or {}
    env = [
        _field_env("POD_NAME", "metadata.name"),
        _field_env("POD_NAMESPACE", "metadata.namespace"),
        _field_env("INSTANCE_IP", "status.podIP"),
        _field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        _field_env("HOST_IP", "status.hostIP"),
        _field_env("NODE_NAME", "spec.nodeName"),
        {"name": "CA_ADDR", "value": params.ca_address},
        {"name": "PROXY_CONFIG", "value": json.dumps(config, sort_keys=True)},
        {"name": "ISTIO_META_CLUSTER_ID", "value": params.cluster_id},
        {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
        {"name": "ISTIO_META_APP_CONTAINERS", "value": ",".join(c["name"] for c in app)},
        {"name": "ISTIO_META_POD_PORTS", "value": json.dumps(_pod_ports(app))},
        {"name": "ISTIO_META_WORKLOAD_NAME",
         "value": str(labels.get("app") or meta.get("generateName", "").rstrip("-") or "")},
    ]
    if probers:
        env.append({"name": PROBERS_ENV, "value": json.dumps(probers, sort_keys=True)})
    for key, value in sorted((config.get("proxyMetadata") or {}).items()):
        env.append({"name": str(key), "value": str(value)})
    container: dict[str, Any] = {
        "name": PROXY_CONTAINER,
        "image": params.image,
        "command": ["ratline", "agent"],
        "env": env,
        "ports": [{"name": "http-envoy-prom", "containerPort": ENVOY_PROMETHEUS_PORT,
                   "protocol": "TCP"}],
        "readinessProbe": _health_probe(periodSeconds=15, timeoutSeconds=3,
                                        failureThreshold=4),
        "resources": resources,
        "restartPolicy": "Always",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsGroup": PROXY_UID,
            "runAsNonRoot": True,
            "runAsUser": PROXY_UID,
        },
        "volumeMounts": [
            {"name": "workload-socket", "mountPath": SOCKET_DIR},
            {"name": "istio-envoy", "mountPath": PROXY_DIR},
            {"name": "istio-token", "mountPath": TOKEN_DIR},
            {"name": "istiod-ca-cert", "mountPath": CA_ROOT_DIR},
            {"name": "istio-podinfo", "mountPath": PODINFO_DIR},
        ],
    }
    if config.get("holdApplicationUntilProxyStarts", True):
        container["startupProbe"] = _health_probe(periodSeconds=1, timeoutSeconds=3,
                                                  failureThreshold=600)
    return container


def _volumes() -> list[dict[str, Any]]:
    return [
        {"name": "workload-socket", "emptyDir": {}},
        {"name": "istio-envoy", "emptyDir": {"medium": "Memory"}},
        {"name": "istio-podinfo", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        ]}},
        {"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": TOKEN_AUDIENCE, "expirationSeconds": 43200, "path": "istio-token"}}]}},
        {"name": "istiod-ca-cert", "configMap": {"name": CA_ROOT_CONFIGMAP}},
    ]


def _labels(labels: Mapping[str, str], name: str) -> dict[str, str]:
    out = dict(labels)
    out["security.istio.io/tlsMode"] = "istio"
    canonical = labels.get("app.kubernetes.io/name") or labels.get("app") or name
    out.setdefault("service.istio.io/canonical-name", canonical)
    revision = labels.get("app.kubernetes.io/version") or labels.get("version") or "latest"
    out.setdefault("service.istio.io/canonical-revision", revision)
    return out


def inject(pod: Mapping[str, Any], params: InjectionParams, namespace: str = "") -> Injected:
    """The injected pod and the JSON patch making it; InjectionError on bad annotations."""
    meta = _metadata(pod)
    namespace = namespace or str(meta.get("namespace") or "")
    reason = skip_reason(pod, namespace)
    if reason:
        return Injected(copy.deepcopy(dict(pod)), [], reason=reason)
    annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
    spec = copy.deepcopy(dict(pod.get("spec") or {}))
    config, warnings = proxy_config(params.mesh_proxy_config, annotations)
    config.setdefault("discoveryAddress", params.xds_address)
    resources = proxy_resources(annotations, params.proxy_cpu, params.proxy_memory)
    capture = capture_config(annotations)
    app = _app_containers(spec)
    probers: dict[str, Any] = {}
    if not _opted_out(annotations.get(REWRITE_PROBES, "true")):
        app, probers = rewrite_probes(app)
    sidecar = _proxy_container(params, pod, config, probers, resources, app)
    init = [_init_container(params, capture, copy.deepcopy(resources)), sidecar,
            *(dict(c) for c in spec.get("initContainers") or ())]
    volumes = [*(spec.get("volumes") or ()), *_volumes()]
    status = {"initContainers": [INIT_CONTAINER, PROXY_CONTAINER], "containers": [],
              "volumes": [v["name"] for v in _volumes()], "revision": params.revision}
    new_annotations = {
        "prometheus.io/port": str(AGENT_METRICS_PORT),
        "prometheus.io/path": "/stats/prometheus",
        "prometheus.io/scrape": "true",
        **annotations,
        STATUS: json.dumps(status, sort_keys=True),
        "kubectl.kubernetes.io/default-container": app[0]["name"] if app else PROXY_CONTAINER,
        "kubectl.kubernetes.io/default-logs-container": app[0]["name"] if app else "",
        "istio.io/rev": params.revision,
    }
    new_labels = _labels(meta.get("labels") or {}, str(meta.get("name") or ""))
    patch: list[dict[str, Any]] = [
        {"op": "add", "path": "/spec/initContainers", "value": init},
        {"op": "add", "path": "/spec/containers", "value": app},
        {"op": "add", "path": "/spec/volumes", "value": volumes},
        {"op": "add", "path": "/metadata/annotations", "value": new_annotations},
        {"op": "add", "path": "/metadata/labels", "value": new_labels},
    ]
    injected = copy.deepcopy(dict(pod))
    injected["spec"] = {**spec, "initContainers": init, "containers": app, "volumes": volumes}
    injected["metadata"] = {**meta, "annotations": new_annotations, "labels": new_labels}
    return Injected(injected, patch, warnings)
