"""Listeners of a sidecar whose traffic is captured (proxy metadata INTERCEPTION_MODE
REDIRECT): Istio's `virtualOutbound` and `virtualInbound`.

The pod's iptables rules send every outbound TCP connection to 15001 and every inbound
one to 15006; REDIRECT keeps the address the app dialled, which Envoy reads back
(`SO_ORIGINAL_DST`).

- `virtualOutbound` (0.0.0.0:15001, `use_original_dst`) hands each connection to the
  listener of its original destination: one per service port at the service's address
  (the cluster IP), `bind_to_port: false`, built as the local runtime's per-service
  listener is (HTTP routed by RDS `HOST:PORT`, TCP by the VirtualService's tcp/tls
  rules). Anything else goes out unchanged to its original destination
  (`PassthroughOriginalDst`, an ORIGINAL_DST cluster) — a pod IP dialled directly
  included, which the destination's own sidecar then captures.
- `virtualInbound` (0.0.0.0:15006, the original_dst and TLS inspector listener filters)
  carries the chains of the sidecar's inbound listeners, each matched by its container
  port (`destination_port`), with their PeerAuthentication mode (STRICT: mTLS only);
  other ports pass through to the pod's own address from 127.0.0.6
  (`InboundPassthroughCluster`), as Istio's, under the workload's mode too: with STRICT
  the passthrough chain takes mTLS only (terminated here, then plain to the app), so no
  port of a STRICT pod answers a plain-text client.

Nothing here knows where the metadata came from (a Kubernetes pod's injected sidecar).
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.original_dst.v3 import original_dst_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from ratline.translate.common import duration, pack_any
from ratline.translate.endpoints import socket_address

VIRTUAL_OUTBOUND = "virtualOutbound"
VIRTUAL_INBOUND = "virtualInbound"
OUTBOUND_PASSTHROUGH = "PassthroughOriginalDst"
INBOUND_PASSTHROUGH = "InboundPassthroughCluster"
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6"
ORIGINAL_DST_FILTER = "envoy.filters.listener.original_dst"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
ANY_ADDRESS = "0.0.0.0"
CONNECT_TIMEOUT_S = 10.0


def _tcp_proxy_chain(name: str, cluster: str) -> listener_components_pb2.FilterChain:
    chain = listener_components_pb2.FilterChain(name=name)
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=cluster, cluster=cluster)
    chain.filters.add(name=TCP_PROXY).typed_config.CopyFrom(pack_any(proxy))
    return chain


def original_dst_cluster(name: str, bind_source: str = "") -> cluster_pb2.Cluster:
    """Connects to the connection's original destination (optionally from `bind_source`)."""
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.ORIGINAL_DST,
        lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
        connect_timeout=duration(CONNECT_TIMEOUT_S),
    )
    if bind_source:
        cluster.upstream_bind_config.CopyFrom(
            address_pb2.BindConfig(
                source_address=address_pb2.SocketAddress(address=bind_source, port_value=0)
            )
        )
    return cluster


def passthrough_clusters() -> list[cluster_pb2.Cluster]:
    return [
        original_dst_cluster(OUTBOUND_PASSTHROUGH),
        original_dst_cluster(INBOUND_PASSTHROUGH, INBOUND_PASSTHROUGH_SOURCE),
    ]


def virtual_outbound(port: int) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(
        name=VIRTUAL_OUTBOUND,
        address=socket_address(ANY_ADDRESS, port),
        traffic_direction=base_pb2.OUTBOUND,
    )
    listener.use_original_dst.value = True
    listener.default_filter_chain.CopyFrom(
        _tcp_proxy_chain(OUTBOUND_PASSTHROUGH, OUTBOUND_PASSTHROUGH)
    )
    return listener


def service_address_listener(
    built: listener_pb2.Listener, address: str, port: int
) -> listener_pb2.Listener:
    """A per-service listener moved to `address:port`, reached only through hand-off."""
    listener = listener_pb2.Listener()
    listener.CopyFrom(built)
    listener.name = f"{address}_{port}"
    listener.address.CopyFrom(socket_address(address, port))
    listener.bind_to_port.value = False
    return listener


def virtual_inbound(
    port: int,
    inbound: Sequence[tuple[int, listener_pb2.Listener]],
    passthrough_tls: base_pb2.TransportSocket | None = None,
) -> listener_pb2.Listener:
    """`virtualInbound` from (container port, inbound listener) pairs; the passthrough
    chain (ports no inbound listener has) terminates `passthrough_tls` when given."""
    listener = listener_pb2.Listener(
        name=VIRTUAL_INBOUND,
        address=socket_address(ANY_ADDRESS, port),
        traffic_direction=base_pb2.INBOUND,
    )
    listener.listener_filters.add(
        name=ORIGINAL_DST_FILTER, typed_config=pack_any(original_dst_pb2.OriginalDst())
    )
    listener.listener_filters.add(
        name=TLS_INSPECTOR, typed_config=pack_any(tls_inspector_pb2.TlsInspector())
    )
    for container_port, built in inbound:
        for chain in built.filter_chains:
            moved = listener.filter_chains.add()
            moved.CopyFrom(chain)
            moved.filter_chain_match.destination_port.value = container_port
            if not moved.name:
                moved.name = built.name
    listener.default_filter_chain.CopyFrom(
        _tcp_proxy_chain(INBOUND_PASSTHROUGH, INBOUND_PASSTHROUGH)
    )
    if passthrough_tls is not None:
        listener.default_filter_chain.name = f"{INBOUND_PASSTHROUGH}|mtls"
        listener.default_filter_chain.transport_socket.CopyFrom(passthrough_tls)
    return listener
