"""Envoy bootstrap config: who the proxy is and where its control plane is.

Everything else reaches Envoy over ADS. The bootstrap is plain JSON (Envoy reads it with
`--config-path`), built by a pure function so it can be unit-tested and inspected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ratline.observability.istio_metrics import BUCKETS
from ratline.translate.telemetry_envoy import STAT_PREFIX

XDS_CLUSTER = "xds-grpc"
SDS_CLUSTER = "sds-grpc"
"""The agent's SDS server on a Unix socket (workload cert `default`, trust bundle `ROOTCA`)."""
CONTROL_PLANE_HOST = "istiod.istio-system.svc"
"""The name the control plane's serving certificate carries (checked over xDS TLS)."""


@dataclass(frozen=True)
class BootstrapParams:
    node_id: str
    cluster: str
    """Envoy's `--service-cluster`: `reviews.default` for a sidecar."""
    xds_host: str
    xds_port: int
    admin_port: int
    admin_host: str = "127.0.0.1"
    delta: bool = False
    metadata: Mapping[str, str] = field(default_factory=dict)
    locality: str = ""
    sds_socket: str = ""
    """Path of the agent's SDS Unix socket; "" for a proxy without workload certificates."""
    xds_tls: bool = False
    """Reach the control plane over mTLS (needs `sds_socket` for the proxy's certificate)."""


def http2_options() -> dict[str, Any]:
    return {
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http2_protocol_options": {}},
        }
    }


def _sds_secret(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "sds_config": {
            "api_config_source": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": SDS_CLUSTER}}],
            },
            "resource_api_version": "V3",
        },
    }


def sds_cluster(socket_path: str) -> dict[str, Any]:
    """The static cluster reaching the agent's SDS server over its Unix socket."""
    return {
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": http2_options(),
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"pipe": {"path": socket_path}}}}]}
            ],
        },
    }


def xds_tls_socket() -> dict[str, Any]:
    """mTLS to the control plane: the proxy's SDS cert, the server checked by name and root."""
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/"
            "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": CONTROL_PLANE_HOST,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificate_sds_secret_configs": [_sds_secret("default")],
                "combined_validation_context": {
                    "default_validation_context": {
                        "match_typed_subject_alt_names": [
                            {"san_type": "DNS", "matcher": {"exact": CONTROL_PLANE_HOST}}
                        ]
                    },
                    "validation_context_sds_secret_config": _sds_secret("ROOTCA"),
                },
            },
        },
    }


def build_bootstrap(p: BootstrapParams) -> dict[str, Any]:
    """The bootstrap for one proxy, as a JSON-able dict."""
    config_source = {"ads": {}, "resource_api_version": "V3"}
    bootstrap = _base_bootstrap(p, config_source)
    clusters = bootstrap["static_resources"]["clusters"]
    if p.sds_socket:
        clusters.append(sds_cluster(p.sds_socket))
    if p.xds_tls:
        clusters[0]["transport_socket"] = xds_tls_socket()
    return bootstrap


def _base_bootstrap(p: BootstrapParams, config_source: dict[str, Any]) -> dict[str, Any]:
    return {
        "node": {
            "id": p.node_id,
            "cluster": p.cluster,
            "metadata": dict(p.metadata),
            **({"locality": {"zone": p.locality}} if p.locality else {}),
        },
        "admin": {
            "address": {"socket_address": {"address": p.admin_host, "port_value": p.admin_port}},
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if p.delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
            },
            "cds_config": config_source,
            "lds_config": config_source,
        },
        "static_resources": {
            "clusters": [
                {
                    "name": XDS_CLUSTER,
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": http2_options(),
                    "load_assignment": {
                        "cluster_name": XDS_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {
                                                    "address": p.xds_host,
                                                    "port_value": p.xds_port,
                                                }
                                            }
                                        }
                                    }
                                ]
                            }
                        ],
                    },
                }
            ]
        },
        "stats_config": {
            # Istio's buckets for its histograms (Envoy's defaults, written out).
            "histogram_bucket_settings": [
                {"match": {"prefix": f"{STAT_PREFIX}."}, "buckets": list(BUCKETS)}
            ]
        },
        "layered_runtime": {
            "layers": [
                {
                    "name": "static",
                    "static_layer": {
                        # Istio's defaults: no global connection cap surprises on a laptop.
                        "overload.global_downstream_max_connections": 1_000_000,
                    },
                }
            ]
        },
    }


def envoy_args(
    envoy: str, config_path: str, *, concurrency: int, log_level: str, base_id: int | None = None
) -> list[str]:
    """The Envoy command line for one proxy (no hot restart: several Envoys share a host).

    `--drain-strategy immediate`, as Istio's pilot-agent passes: when a listener's filter
    chain changes (an AuthorizationPolicy applied or deleted), the connections on the old
    chain are closed after their next request instead of with a probability rising over
    the drain time. With the gradual default, a gateway's pooled connection kept the old
    policy for about a second after the sidecar had the new one.
    """
    args = [
        envoy,
        "--config-path",
        config_path,
        "--concurrency",
        str(concurrency),
        "--log-level",
        log_level,
        "--disable-hot-restart",
        "--drain-time-s",
        "5",
        "--drain-strategy",
        "immediate",
        "--parent-shutdown-time-s",
        "10",
        # Access logs reach their file within 1 s (Envoy's default is 10 s), as Istio's agent
        "--file-flush-interval-msec",
        "1000",
    ]
    if base_id is not None:
        args += ["--base-id", str(base_id)]
    return args
