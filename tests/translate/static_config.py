"""Turn one proxy's generated resources into a static Envoy bootstrap (no control plane).

EDS clusters become STATIC clusters with their load assignment inline, and RDS references
become inline route configurations, so Envoy can validate or run exactly what the
control plane would serve.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import json_format

from ratline.agent.bootstrap import http2_options
from ratline.translate.generator import ProxyResources


def _to_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def static_bootstrap(resources: ProxyResources, admin_port: int = 0) -> dict[str, Any]:
    """A bootstrap holding `resources` as static_resources.

    Inlined route configurations validate their clusters, so a route naming a cluster the
    proxy does not have fails validation.
    """
    assignments = {a.cluster_name: a for a in resources.endpoints}
    routes = {r.name: r for r in resources.routes}
    clusters = []
    for original in resources.clusters:
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(original)
        if cluster.type == cluster_pb2.Cluster.EDS:
            cluster.ClearField("eds_cluster_config")
            cluster.type = cluster_pb2.Cluster.STATIC
            cluster.load_assignment.CopyFrom(assignments[cluster.name])
        clusters.append(_to_dict(cluster))
    listeners = []
    for original in resources.listeners:
        listener = type(original)()
        listener.CopyFrom(original)
        for chain in listener.filter_chains:
            for network_filter in chain.filters:
                hcm = hcm_pb2.HttpConnectionManager()
                if not network_filter.typed_config.Unpack(hcm):
                    continue  # tcp_proxy, RBAC: nothing to inline
                if hcm.HasField("rds"):
                    name = hcm.rds.route_config_name
                    hcm.route_config.CopyFrom(routes[name])
                    hcm.route_config.validate_clusters.value = True
                network_filter.typed_config.Pack(hcm)
        listeners.append(_static_secret_refs(_to_dict(listener)))
    secrets = [_to_dict(secret) for secret in resources.secrets]
    return {
        "node": {"id": "test", "cluster": "test"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}
        },
        "static_resources": {
            "clusters": [*clusters, _xds_cluster()],
            "listeners": listeners,
            "secrets": secrets,
        },
    }


def _static_secret_refs(value: Any) -> Any:
    """SDS references over ADS (gateway credentials) as references to static secrets."""
    if isinstance(value, dict):
        if set(value) == {"name", "sds_config"} and "ads" in value["sds_config"]:
            return {"name": value["name"]}
        return {k: _static_secret_refs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_static_secret_refs(v) for v in value]
    return value


def _xds_cluster() -> dict[str, Any]:
    """The bootstrap's `xds-grpc` cluster (where the embedded trace store would be), here
    pointing nowhere: spans sent there are dropped."""
    return {
        "name": "xds-grpc",
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": http2_options(),
        "load_assignment": {"cluster_name": "xds-grpc", "endpoints": []},
    }


def write_bootstrap(path: Path, resources: ProxyResources, admin_port: int = 0) -> Path:
    path.write_text(json.dumps(static_bootstrap(resources, admin_port), indent=1))
    return path


def validate(envoy: str, config: Path) -> subprocess.CompletedProcess[str]:
    """`envoy --mode validate`: parses and checks the config without serving it."""
    return subprocess.run(
        [envoy, "--mode", "validate", "-c", str(config), "--disable-hot-restart"],
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
