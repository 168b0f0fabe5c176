"""Peer workload metadata for TCP metrics, where vanilla Envoy has no metadata exchange.

Istio's proxies exchange workload metadata on mTLS TCP connections (its
`metadata_exchange` network filter); Envoy 1.40 has none, so each direction takes a
mechanism Envoy does have:

- **Source reporter** (the client's tcp_proxy) learns the *destination*'s workload from
  the control plane: every endpoint of a TCP/TLS service port carries its instance's
  peer metadata (`x-envoy-peer-metadata`'s value) in its EDS metadata
  (`ratline.peer` / `metadata`), which the stats logger reads as
  `%UPSTREAM_METADATA(ratline.peer:metadata)%` for the host the connection went to.
- **Destination reporter** (the server's inbound tcp_proxy) learns the *source*'s from the
  connection itself: a client sidecar (or gateway) opens its mTLS connections to sidecars
  on TCP ports with a PROXY protocol v2 header (`upstream_proxy_protocol` transport socket
  around the mTLS one: the header precedes the handshake, in the clear and not
  authenticated; the principals still come from the certificates) carrying its own
  metadata as a custom TLV; the server's
  `proxy_protocol` listener filter keeps it in dynamic metadata, where HTTP's
  header-to-metadata filter keeps the peer header, so the same tag reads both.

Only endpoints that are sidecars taking mTLS get the header (their transport socket match
carries `peerExchange`); every mTLS inbound listener accepts one (and connections without).
"""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, proxy_protocol_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.extensions.filters.listener.proxy_protocol.v3 import (
    proxy_protocol_pb2 as listener_proxy_protocol_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.proxy_protocol.v3 import upstream_proxy_protocol_pb2

from ratline.model.snapshot import Endpoint, MeshSnapshot
from ratline.observability.istio_metrics import PEER_METADATA_NAMESPACE
from ratline.observability.peer_metadata import PeerMetadata
from ratline.registry.instances import ProxyKind, WorkloadInstance
from ratline.translate.common import pack_any
from ratline.translate.tls import (
    DISABLE,
    TLS_MODE_ISTIO,
    TLS_MODE_KEY,
    TRANSPORT_SOCKET_MATCH,
)
from ratline.translate.tls import (
    secure_inbound as tls_secure_inbound,
)

PEER_KEY = "metadata"
"""The key of the peer's metadata in `ratline.peer` (endpoint and dynamic metadata)."""
TLV_TYPE = 0xE4
"""The PROXY protocol v2 TLV carrying the client's metadata (a custom type, 0xE0-0xEF)."""
EXCHANGE_KEY = "peerExchange"
EXCHANGE_VALUE = "proxy-protocol"
MATCH_NAME = "tlsMode-istio-peer"
EARLY_DATA_BYTES = 65536
"""What an inbound mTLS tcp_proxy buffers of the client's bytes while the app connects."""
UPSTREAM_PROXY_PROTOCOL = "envoy.transport_sockets.upstream_proxy_protocol"
PROXY_PROTOCOL_FILTER = "envoy.filters.listener.proxy_protocol"
UPSTREAM_PEER_FORMAT = f"%UPSTREAM_METADATA({PEER_METADATA_NAMESPACE}:{PEER_KEY})%"
"""What a source reporter's TCP metrics read as the destination's metadata."""

EndpointPeer = Callable[[Endpoint], tuple[PeerMetadata, bool] | None]
"""An endpoint's workload metadata, and whether it is a sidecar (takes the header)."""


def endpoint_peers(snapshot: MeshSnapshot) -> EndpointPeer:
    """The metadata of the instance behind an endpoint (a WorkloadEntry's from its own
    fields), None for an endpoint of no instance (a ServiceEntry address)."""
    by_name: dict[tuple[str, str], WorkloadInstance] = {}

    def peer(endpoint: Endpoint) -> tuple[PeerMetadata, bool] | None:
        if not endpoint.instance:
            return None
        if not by_name:
            by_name.update({(i.name, i.namespace): i for i in snapshot.instances.values()})
        instance = by_name.get((endpoint.instance, endpoint.namespace))
        if instance is None:
            meta = PeerMetadata(
                endpoint.instance, endpoint.namespace, endpoint.instance,
                dict(endpoint.labels), endpoint.service_account or "default",
            )  # fmt: skip
            return meta, False
        meta = PeerMetadata(
            instance.name, instance.namespace, instance.workload, dict(instance.labels),
            instance.service_account,
        )  # fmt: skip
        return meta, instance.kind is ProxyKind.SIDECAR and instance.sidecar is not None

    return peer


def annotate(lb_endpoint: object, peer: PeerMetadata, sidecar: bool) -> None:
    """Write an endpoint's metadata, and mark a sidecar taking mTLS for the header."""
    metadata = lb_endpoint.metadata.filter_metadata  # type: ignore[attr-defined]
    metadata[PEER_METADATA_NAMESPACE].update({PEER_KEY: peer.header_value()})
    match = metadata.get(TRANSPORT_SOCKET_MATCH)
    if sidecar and match is not None and match.fields.get(TLS_MODE_KEY) is not None:
        match.update({EXCHANGE_KEY: EXCHANGE_VALUE})


def with_header(cluster: cluster_pb2.Cluster) -> None:
    """Before a TCP cluster's auto-mTLS match, the same mTLS socket behind a PROXY v2
    header for sidecar endpoints; the header passes the tcp_proxy's TLVs (the client's
    metadata, `tcp_proxy_tlv`)."""
    found = next((m for m in cluster.transport_socket_matches if m.name == "tlsMode-istio"), None)
    if found is None or any(m.name == MATCH_NAME for m in cluster.transport_socket_matches):
        return
    wrapped = upstream_proxy_protocol_pb2.ProxyProtocolUpstreamTransport()
    wrapped.config.version = proxy_protocol_pb2.ProxyProtocolConfig.V2
    wrapped.config.pass_through_tlvs.match_type = (
        proxy_protocol_pb2.ProxyProtocolPassThroughTLVs.INCLUDE_ALL
    )
    wrapped.transport_socket.CopyFrom(found.transport_socket)
    match = cluster_pb2.Cluster.TransportSocketMatch(name=MATCH_NAME)
    match.match.update({TLS_MODE_KEY: TLS_MODE_ISTIO, EXCHANGE_KEY: EXCHANGE_VALUE})
    match.transport_socket.CopyFrom(
        base_pb2.TransportSocket(name=UPSTREAM_PROXY_PROTOCOL, typed_config=pack_any(wrapped))
    )
    matches = list(cluster.transport_socket_matches)
    del cluster.transport_socket_matches[:]
    cluster.transport_socket_matches.extend([match, *matches])


def tcp_proxy_tlv(own: PeerMetadata) -> proxy_protocol_pb2.TlvEntry:
    """The client's own metadata as the TLV its tcp_proxy adds to the header."""
    return proxy_protocol_pb2.TlvEntry(type=TLV_TYPE, value=own.header_value().encode())


def takes_header(listener: listener_pb2.Listener) -> bool:
    return any(f.name == PROXY_PROTOCOL_FILTER for f in listener.listener_filters)


def accept_header(listener: listener_pb2.Listener) -> None:
    """Let an mTLS inbound listener take a client's PROXY v2 header (first of its listener
    filters, before the TLS inspector and original_dst) and keep the peer's metadata;
    connections without a header are taken as they come."""
    if takes_header(listener):
        return
    config = listener_proxy_protocol_pb2.ProxyProtocol(allow_requests_without_proxy_protocol=True)
    rule = config.rules.add(tlv_type=TLV_TYPE)
    rule.on_tlv_present.metadata_namespace = PEER_METADATA_NAMESPACE
    rule.on_tlv_present.key = PEER_KEY
    existing = list(listener.listener_filters)
    del listener.listener_filters[:]
    listener.listener_filters.append(
        listener_components_pb2.ListenerFilter(
            name=PROXY_PROTOCOL_FILTER, typed_config=pack_any(config)
        )
    )
    listener.listener_filters.extend(existing)


def secure_inbound(listener: listener_pb2.Listener, mode: str) -> listener_pb2.Listener:
    """`tls.secure_inbound`, and a listener taking mTLS also takes the clients' header;
    its mTLS tcp_proxies connect to the app once the handshake is done, so the client's
    certificate is known when `connections_opened` is logged (IMMEDIATE logs it before
    the handshake of the first connection is over: principal `unknown`, policy `none`)."""
    secured = tls_secure_inbound(listener, mode)
    if mode != DISABLE:
        accept_header(secured)
        for chain in secured.filter_chains:
            if chain.HasField("transport_socket"):
                _connect_after_handshake(chain)
    return secured


def _connect_after_handshake(chain: listener_components_pb2.FilterChain) -> None:
    for network_filter in chain.filters:
        if network_filter.typed_config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR):
            proxy = tcp_proxy_pb2.TcpProxy()
            network_filter.typed_config.Unpack(proxy)
            proxy.upstream_connect_mode = tcp_proxy_pb2.ON_DOWNSTREAM_TLS_HANDSHAKE
            proxy.max_early_data_bytes.value = EARLY_DATA_BYTES
            network_filter.typed_config.CopyFrom(pack_any(proxy))
