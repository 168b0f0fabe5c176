"""The names of Envoy resources, as Istio names them, so Istio tooling habits carry over.

Clusters `outbound|9080|v1|reviews.default.svc.cluster.local` and `inbound|9080||`,
listeners `http_proxy`, `inbound|9080||` and `0.0.0.0_8080`, route configurations
`http_proxy` and `http.8080`, virtual hosts `reviews.default.svc.cluster.local:9080`.
"""

from __future__ import annotations

BLACKHOLE_CLUSTER = "BlackHoleCluster"
"""A cluster with no endpoints: whatever is routed to it fails (REGISTRY_ONLY)."""

PASSTHROUGH_CLUSTER = "PassthroughCluster"
"""Where traffic to hosts outside the registry goes under ALLOW_ANY."""

HTTP_PROXY = "http_proxy"
"""The sidecar's outbound listener and its route configuration (the app's HTTP_PROXY)."""

ALLOW_ANY_VHOST = "allow_any"
"""Catch-all virtual host under outboundTrafficPolicy ALLOW_ANY."""

BLOCK_ALL_VHOST = "block_all"
"""Catch-all virtual host under outboundTrafficPolicy REGISTRY_ONLY."""

DNS_CACHE = "ratline_dns_cache"
"""The dynamic forward proxy DNS cache shared by the passthrough cluster and its filter."""

MESH_GATEWAY = "mesh"
"""The reserved gateway name meaning every sidecar."""


def outbound_cluster(port: int, subset: str, hostname: str) -> str:
    """`outbound|9080|v1|reviews.default.svc.cluster.local` (subset may be empty)."""
    return f"outbound|{port}|{subset}|{hostname}"


def parse_outbound_cluster(name: str) -> tuple[int, str, str]:
    """Inverse of `outbound_cluster`: (port, subset, hostname). Raises ValueError."""
    parts = name.split("|")
    if len(parts) != 4 or parts[0] != "outbound":
        raise ValueError(f"not an outbound cluster name: {name!r}")
    return int(parts[1]), parts[2], parts[3]


def inbound_cluster(port: int) -> str:
    """`inbound|9080||`: the cluster to the app behind a sidecar, by container port."""
    return f"inbound|{port}||"


def inbound_listener(port: int) -> str:
    """`inbound|9080||`: the sidecar listener for one container port."""
    return f"inbound|{port}||"


def gateway_listener(listen_port: int) -> str:
    """`0.0.0.0_8080`: a gateway listener, named by the port it really listens on."""
    return f"0.0.0.0_{listen_port}"


def gateway_route_config(listen_port: int) -> str:
    """`http.8080`: the route configuration of a gateway's HTTP listener."""
    return f"http.{listen_port}"


def virtual_host(hostname: str, port: int) -> str:
    """`reviews.default.svc.cluster.local:9080`."""
    return f"{hostname}:{port}"
