"""What the pod agent knows of its pod, read from the injected container's environment.

Pure: `PodAgentConfig.from_env(environ)`. The injector (`ratline.kube.injection`) sets
the downward-API variables (POD_NAME, POD_NAMESPACE, INSTANCE_IP, SERVICE_ACCOUNT),
CA_ADDR, PROXY_CONFIG (with `discoveryAddress`), ISTIO_META_* (the proxy's node
metadata, prefix dropped, as pilot-agent does) and ISTIO_KUBE_APP_PROBERS; the files are
the injected volumes at Istio's paths (the projected token, the mesh root, the SDS socket
and bootstrap directories).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ratline.api.schemas.common import parse_duration

TOKEN_PATH = "/var/run/secrets/tokens/istio-token"
ROOT_CERT_PATH = "/var/run/secrets/istio/root-cert.pem"
SOCKET_PATH = "/var/run/secrets/workload-spiffe-uds/socket"
PROXY_DIR = "/etc/istio/proxy"
META_PREFIX = "ISTIO_META_"
PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS"
ENVOY_ADMIN_PORT = 15000
DEFAULT_DRAIN_S = 5.0
DEFAULT_CONCURRENCY = 2


class PodAgentConfigError(ValueError):
    """A variable the injector sets is missing or wrong; the message names it."""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise PodAgentConfigError(f"{name} is not set (the injected sidecar sets it)")
    return value


def _host_port(value: str, name: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise PodAgentConfigError(f"{name}: {value!r} is not HOST:PORT")
    return host, int(port)


@dataclass(frozen=True)
class PodAgentConfig:
    pod_name: str
    namespace: str
    instance_ip: str
    service_account: str
    xds: tuple[str, int]
    ca_address: str
    proxy_config: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    app_probers: Mapping[str, Any] = field(default_factory=dict)
    token_path: Path = Path(TOKEN_PATH)
    root_cert_path: Path = Path(ROOT_CERT_PATH)
    socket_path: Path = Path(SOCKET_PATH)
    proxy_dir: Path = Path(PROXY_DIR)

    @property
    def node_id(self) -> str:
        """Istio's sidecar node id: `sidecar~IP~POD.NS~NS.svc.cluster.local`."""
        ns = self.namespace
        return f"sidecar~{self.instance_ip}~{self.pod_name}.{ns}~{ns}.svc.cluster.local"

    @property
    def cluster(self) -> str:
        """Envoy's service cluster: `WORKLOAD.NAMESPACE`."""
        return f"{self.metadata.get('WORKLOAD_NAME') or self.pod_name}.{self.namespace}"

    @property
    def drain_s(self) -> float:
        value = self.proxy_config.get("terminationDrainDuration")
        return parse_duration(value) if value else DEFAULT_DRAIN_S

    @property
    def concurrency(self) -> int:
        return int(self.proxy_config.get("concurrency") or DEFAULT_CONCURRENCY)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PodAgentConfig:
        try:
            proxy_config = json.loads(environ.get("PROXY_CONFIG") or "{}")
            probers = json.loads(environ.get(PROBERS_ENV) or "{}")
        except ValueError as exc:
            raise PodAgentConfigError(f"PROXY_CONFIG or {PROBERS_ENV}: not JSON: {exc}") from None
        if not isinstance(proxy_config, dict) or not isinstance(probers, dict):
            raise PodAgentConfigError(f"PROXY_CONFIG and {PROBERS_ENV} must be JSON objects")
        discovery = str(proxy_config.get("discoveryAddress") or "")
        if not discovery:
            raise PodAgentConfigError("PROXY_CONFIG has no discoveryAddress")
        metadata = {
            name[len(META_PREFIX):]: value
            for name, value in environ.items()
            if name.startswith(META_PREFIX)
        }
        return cls(
            pod_name=_required(environ, "POD_NAME"),
            namespace=_required(environ, "POD_NAMESPACE"),
            instance_ip=_required(environ, "INSTANCE_IP"),
            service_account=environ.get("SERVICE_ACCOUNT", "").strip() or "default",
            xds=_host_port(discovery, "PROXY_CONFIG.discoveryAddress"),
            ca_address=":".join(map(str, _host_port(_required(environ, "CA_ADDR"), "CA_ADDR"))),
            proxy_config=proxy_config,
            metadata=metadata,
            app_probers=probers,
        )
