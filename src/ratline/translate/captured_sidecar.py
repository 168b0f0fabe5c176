"""A captured sidecar's resources: which instances are captured, and their listeners.

An instance is captured when its sidecar's metadata says INTERCEPTION_MODE REDIRECT
(`SidecarPorts.interception_mode`). Its listeners are then `virtualOutbound` with one
hand-off listener per service port at each of the service's addresses, and
`virtualInbound` with its inbound listeners' chains (`ratline.translate.capture_listeners`);
the HTTP_PROXY listener of local mode is not built (15001 is the capture port).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from ratline.registry.instances import LocalOutbound, WorkloadInstance
from ratline.translate import peer_exchange, tls
from ratline.translate.capture_listeners import (
    passthrough_clusters,
    service_address_listener,
    virtual_inbound,
    virtual_outbound,
)
from ratline.translate.telemetry_envoy import NO_TELEMETRY, L4Telemetry

REDIRECT = "REDIRECT"
OUTBOUND_CAPTURE_PORT = 15001
INBOUND_CAPTURE_PORT = 15006


def is_captured(instance: WorkloadInstance) -> bool:
    return instance.sidecar is not None and instance.sidecar.interception_mode == REDIRECT


def _host_addresses(addresses: Sequence[str]) -> list[str]:
    """The single IPv4 addresses among a service's (a CIDR has no listener address)."""
    found = []
    for value in addresses:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            continue
        if network.version == 4 and network.num_addresses == 1:
            found.append(str(network.network_address))
    return found


def passthrough_tls(generator: Any, instance: WorkloadInstance) -> Any:
    """mTLS for the inbound passthrough chain when the workload's mode (no port's own:
    Istio's catch-all) is STRICT, else None (plain text passes through)."""
    if not generator.mtls:
        return None
    mode = tls.mtls_mode(generator.snapshot, instance.namespace, instance.labels, 0)
    return tls.transport_socket(tls.downstream_mtls()) if mode == tls.STRICT else None


def resources(
    generator: Any,
    instance: WorkloadInstance,
    scope: Any,
    inbound: Sequence[tuple[int, listener_pb2.Listener]],
    local_telemetry: L4Telemetry = NO_TELEMETRY,
) -> tuple[
    list[listener_pb2.Listener], list[route_pb2.RouteConfiguration], tuple[cluster_pb2.Cluster, ...]
]:
    """(listeners, routes, own clusters) of a captured sidecar (`generator` builds the
    per-service listeners as for local mode, with the sidecar's client-side
    `local_telemetry`: Istio's HTTP and TCP metrics, access logs, traces)."""
    services = generator.snapshot.services
    by_listener: dict[str, list[str]] = {}
    wanted = []
    for service in services.values():
        addresses = _host_addresses(service.addresses)
        if not addresses:
            continue
        for port in service.ports:
            wanted.append(LocalOutbound(service.hostname, port.port, port.port))
            by_listener[f"{service.hostname}_{port.port}"] = addresses
    built, routes = generator.local_outbound(instance, scope, wanted, local_telemetry)
    listeners = [virtual_outbound(OUTBOUND_CAPTURE_PORT)]
    for listener in built:
        port = listener.address.socket_address.port_value
        for address in by_listener.get(listener.name, ()):
            listeners.append(service_address_listener(listener, address, port))
    inbound_listener = virtual_inbound(
        INBOUND_CAPTURE_PORT, inbound, passthrough_tls(generator, instance)
    )
    if any(peer_exchange.takes_header(listener) for _, listener in inbound):
        peer_exchange.accept_header(inbound_listener)  # before original_dst restores the port
    listeners.append(inbound_listener)
    return listeners, list(routes), tuple(passthrough_clusters())
