"""Peer workload metadata for TCP metrics (`translate.peer_exchange`): EDS endpoints of TCP
ports carry their workload's metadata, TCP clusters open mTLS to sidecars behind a PROXY
v2 header whose TLV the client's tcp_proxy fills with its own metadata, inbound mTLS
listeners take it; a captured sidecar gets the same telemetry as a local one. Real Envoy
accepts each config (`--mode validate`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.proxy_protocol.v3 import upstream_proxy_protocol_pb2

from ratline.model.snapshot import MeshSnapshot, ServicePort
from ratline.observability.peer_metadata import decode_header
from ratline.registry.instances import LocalOutbound
from ratline.settings import Settings
from ratline.translate import peer_exchange
from ratline.translate.generator import MeshGenerator, ProxyResources
from tests.translate import mesh
from tests.translate.static_config import validate, write_bootstrap

RATINGS = "ratings.default.svc.cluster.local"
REVIEWS = "reviews.default.svc.cluster.local"
LOCAL_RATINGS_PORT = 24000


def tcp_ratings_snapshot(captured: bool = False) -> MeshSnapshot:
    """The test mesh with ratings on a TCP port (as MongoDB), productpage reaching it."""
    snapshot = mesh.snapshot()
    instances = {}
    for node_id, inst in snapshot.instances.items():
        if inst.name == "ratings-v1-0":
            port = dataclasses.replace(inst.ports[0], name="tcp", protocol="TCP")
            inst = dataclasses.replace(inst, ports=(port,))
        if inst.name == "productpage-v1-0":
            assert inst.sidecar is not None
            outbound = (LocalOutbound(RATINGS, 9080, LOCAL_RATINGS_PORT),)
            mode = "REDIRECT" if captured else ""
            sidecar = dataclasses.replace(inst.sidecar, outbound=outbound, interception_mode=mode)
            inst = dataclasses.replace(inst, sidecar=sidecar)
        instances[node_id] = inst
    services = dict(snapshot.services)
    ratings = services[RATINGS]
    services[RATINGS] = dataclasses.replace(ratings, ports=(ServicePort("tcp", 9080, "TCP"),))
    if captured:
        for index, (host, svc) in enumerate(sorted(services.items())):
            addresses = () if svc.origin == "ServiceEntry" else (f"10.96.0.{10 + index}",)
            services[host] = dataclasses.replace(svc, addresses=addresses)
    return dataclasses.replace(snapshot, instances=instances, services=services)


def _resources(snapshot: MeshSnapshot, instance: str) -> ProxyResources:
    generator = MeshGenerator(snapshot, Settings.from_env(), mtls=True)
    found = generator.protos_for(mesh.node(instance))
    assert found is not None
    return found


def _tcp_proxies(listener: Any) -> list[tcp_proxy_pb2.TcpProxy]:
    found = []
    for chain in listener.filter_chains:
        for network_filter in chain.filters:
            if network_filter.typed_config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR):
                proxy = tcp_proxy_pb2.TcpProxy()
                network_filter.typed_config.Unpack(proxy)
                found.append(proxy)
    return found


def _stats_tags(proxy: tcp_proxy_pb2.TcpProxy) -> dict[str, str]:
    for log in proxy.access_log:
        if log.name == "envoy.access_loggers.stats":
            config = stats_pb2.Config()
            log.typed_config.Unpack(config)
            return {t.name: t.value_format for t in config.counters[0].stat.tags}
    return {}


def test_tcp_endpoints_carry_their_workload_and_http_ones_do_not() -> None:
    resources = _resources(tcp_ratings_snapshot(), "productpage-v1-0")
    by_name = {a.cluster_name: a for a in resources.endpoints}
    lb = by_name[f"outbound|9080||{RATINGS}"].endpoints[0].lb_endpoints[0]
    value = lb.metadata.filter_metadata["ratline.peer"].fields["metadata"].string_value
    peer = decode_header(value)
    assert peer is not None
    assert (peer.workload, peer.namespace, peer.app, peer.version) == (
        "ratings-v1", "default", "ratings", "v1")  # fmt: skip
    match = lb.metadata.filter_metadata["envoy.transport_socket_match"]
    assert dict(match) == {"tlsMode": "istio", "peerExchange": "proxy-protocol"}
    reviews = by_name[f"outbound|9080||{REVIEWS}"].endpoints[0].lb_endpoints[0]
    assert "ratline.peer" not in reviews.metadata.filter_metadata


def test_tcp_cluster_sends_the_header_inside_mtls_only_to_sidecars() -> None:
    resources = _resources(tcp_ratings_snapshot(), "productpage-v1-0")
    clusters = {c.name: c for c in resources.clusters}
    ratings = clusters[f"outbound|9080||{RATINGS}"]
    first, second = ratings.transport_socket_matches[:2]
    assert first.name == "tlsMode-istio-peer" and dict(first.match) == {
        "tlsMode": "istio", "peerExchange": "proxy-protocol"}  # fmt: skip
    wrapped = upstream_proxy_protocol_pb2.ProxyProtocolUpstreamTransport()
    first.transport_socket.typed_config.Unpack(wrapped)
    assert wrapped.transport_socket == second.transport_socket  # the same mTLS inside
    assert second.name == "tlsMode-istio" and not ratings.HasField("transport_socket")
    reviews: cluster_pb2.Cluster = clusters[f"outbound|9080||{REVIEWS}"]
    assert [m.name for m in reviews.transport_socket_matches] == ["tlsMode-istio"]


def test_client_tcp_proxy_sends_its_metadata_and_reads_the_upstream_hosts() -> None:
    resources = _resources(tcp_ratings_snapshot(), "productpage-v1-0")
    listener = next(lst for lst in resources.listeners if RATINGS in lst.name)
    (proxy,) = _tcp_proxies(listener)
    (tlv,) = proxy.proxy_protocol_tlvs
    assert tlv.type == peer_exchange.TLV_TYPE
    me = decode_header(tlv.value.decode())
    assert me is not None and me.workload == "productpage-v1"
    tags = _stats_tags(proxy)
    assert tags["reporter"] == "source"
    assert peer_exchange.UPSTREAM_PEER_FORMAT in tags.values()


def test_server_inbound_takes_the_header_first() -> None:
    resources = _resources(tcp_ratings_snapshot(), "ratings-v1-0")
    inbound = next(lst for lst in resources.listeners if lst.name.startswith("inbound|"))
    names = [f.name for f in inbound.listener_filters]
    assert names[0] == peer_exchange.PROXY_PROTOCOL_FILTER, names
    assert names[1:] == ["envoy.filters.listener.tls_inspector"]  # PERMISSIVE
    (proxy, plain) = _tcp_proxies(inbound)  # the mTLS chain and the plain one
    assert _stats_tags(proxy)["reporter"] == "destination"
    assert not proxy.proxy_protocol_tlvs
    # The app is connected once the client's certificate is known (connections_opened).
    assert proxy.upstream_connect_mode == tcp_proxy_pb2.ON_DOWNSTREAM_TLS_HANDSHAKE
    assert plain.upstream_connect_mode == tcp_proxy_pb2.IMMEDIATE


def _hcm(listener: Any) -> hcm_pb2.HttpConnectionManager:
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    return hcm


def test_captured_sidecar_reports_http_and_tcp_metrics_as_a_local_one(tmp_path: Path) -> None:
    snapshot = tcp_ratings_snapshot(captured=True)
    resources = _resources(snapshot, "productpage-v1-0")
    by_name = {listener.name: listener for listener in resources.listeners}
    ratings_ip = snapshot.services[RATINGS].addresses[0]
    (proxy,) = _tcp_proxies(by_name[f"{ratings_ip}_9080"])
    assert _stats_tags(proxy)["reporter"] == "source"
    assert [t.type for t in proxy.proxy_protocol_tlvs] == [peer_exchange.TLV_TYPE]
    assert proxy.access_log_options.flush_access_log_on_connected
    reviews_ip = snapshot.services[REVIEWS].addresses[0]
    hcm = _hcm(by_name[f"{reviews_ip}_9080"])
    assert "envoy.access_loggers.stats" in [log.name for log in hcm.access_log]
    assert "envoy.filters.http.header_mutation" in [f.name for f in hcm.http_filters]
    inbound = by_name["virtualInbound"]
    assert [f.name for f in inbound.listener_filters] == [
        peer_exchange.PROXY_PROTOCOL_FILTER,
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
    ]
    result = validate(Settings.from_env().envoy, write_bootstrap(tmp_path / "e.json", resources))
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_validates_the_tcp_client_and_server(tmp_path: Path) -> None:
    snapshot = tcp_ratings_snapshot()
    for instance in ("productpage-v1-0", "ratings-v1-0"):
        path = write_bootstrap(tmp_path / f"{instance}.json", _resources(snapshot, instance))
        result = validate(Settings.from_env().envoy, path)
        assert result.returncode == 0, result.stdout + result.stderr
