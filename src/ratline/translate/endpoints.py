"""EDS: the ClusterLoadAssignment of every EDS cluster (one per service port and subset).

Endpoints are the registry's, for that port, filtered by the subset's labels, grouped by
locality (with priorities and weights for the client's locality where a DestinationRule's
locality load balancing asks for them). Unhealthy endpoints stay in the assignment marked
UNHEALTHY, so Envoy's stats show them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from envoy.config.core.v3 import address_pb2, base_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import wrappers_pb2

from ratline.api.protocols import is_http
from ratline.model.snapshot import Endpoint, MeshSnapshot, Resolution, Service
from ratline.translate import names
from ratline.translate.common import labels_match
from ratline.translate.locality import (
    NOWHERE,
    ClientLocality,
    depends_on_client,
    effective_setting,
    localize,
    priority_labels,
)
from ratline.translate.peer_exchange import EndpointPeer, annotate
from ratline.translate.policy import destination_rule_for, effective_policy, subsets_of


def locality(value: str) -> base_pb2.Locality:
    """`region/zone/subzone` (any prefix of it) as an Envoy Locality."""
    parts = [*value.split("/"), "", "", ""][:3] if value else ["", "", ""]
    return base_pb2.Locality(region=parts[0], zone=parts[1], sub_zone=parts[2])


def socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def lb_endpoint(endpoint: Endpoint) -> endpoint_components_pb2.LbEndpoint:
    """One endpoint with its health and weight."""
    status = health_check_pb2.HEALTHY if endpoint.healthy else health_check_pb2.UNHEALTHY
    return endpoint_components_pb2.LbEndpoint(
        endpoint=endpoint_components_pb2.Endpoint(
            address=socket_address(endpoint.address, endpoint.port)
        ),
        health_status=status,
        load_balancing_weight=wrappers_pb2.UInt32Value(value=max(endpoint.weight, 1)),
    )


TlsPredicate = Callable[[Endpoint], bool]
"""Whether an endpoint takes mTLS (it gets the `tlsMode: istio` label); see translate.tls."""


def load_assignment(
    cluster_name: str,
    endpoints: Iterable[Endpoint],
    takes_mtls: TlsPredicate | None = None,
    peers: EndpointPeer | None = None,
) -> endpoint_pb2.ClusterLoadAssignment:
    """A load assignment grouping endpoints by locality (sorted, so output is stable);
    with `peers`, each endpoint carries its workload's metadata (`translate.peer_exchange`)."""
    by_locality: dict[str, list[Endpoint]] = {}
    for endpoint in endpoints:
        by_locality.setdefault(endpoint.locality, []).append(endpoint)
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    for where in sorted(by_locality):
        group = sorted(by_locality[where], key=lambda e: (e.address, e.port, e.instance))
        lb_endpoints = [lb_endpoint(e) for e in group]
        assignment.endpoints.append(
            endpoint_components_pb2.LocalityLbEndpoints(
                locality=locality(where),
                lb_endpoints=lb_endpoints,
                load_balancing_weight=wrappers_pb2.UInt32Value(
                    value=sum(e.load_balancing_weight.value for e in lb_endpoints)
                ),
            )
        )
        if takes_mtls is not None:
            for endpoint, lb in zip(group, assignment.endpoints[-1].lb_endpoints, strict=True):
                if takes_mtls(endpoint):
                    lb.metadata.filter_metadata["envoy.transport_socket_match"].update(
                        {"tlsMode": "istio"}
                    )
        if peers is not None:
            for endpoint, lb in zip(group, assignment.endpoints[-1].lb_endpoints, strict=True):
                found = peers(endpoint)
                if found is not None:
                    annotate(lb, *found)
    return assignment


def subset_endpoints(
    endpoints: Iterable[Endpoint], labels: Mapping[str, str] | None
) -> list[Endpoint]:
    """The endpoints carrying every label of a subset."""
    return [e for e in endpoints if labels_match(labels, e.labels)]


def service_load_assignments(
    snapshot: MeshSnapshot,
    service: Service,
    takes_mtls: TlsPredicate | None = None,
    client: ClientLocality = NOWHERE,
    peers: EndpointPeer | None = None,
) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """The load assignments of one EDS service: per port, the whole set and each subset,
    as a client at `client` sees them (locality priorities and weights, see
    `translate.locality`). With `peers`, the endpoints of TCP (non-HTTP) ports carry
    their workload's metadata for the TCP metrics."""
    if service.resolution is not Resolution.EDS:
        return []
    rule = destination_rule_for(snapshot, service)
    result = []
    for port in service.ports:
        endpoints = service.endpoints.get(port.port, ())
        labels_of = {(e.address, e.port): e.labels for e in endpoints}
        for subset in (None, *subsets_of(rule)):
            subset_name = subset.name if subset is not None else ""
            name = names.outbound_cluster(port.port, subset_name, service.hostname)
            chosen = endpoints if subset is None else subset_endpoints(endpoints, subset.labels)
            tcp_peers = None if is_http(port.protocol) else peers
            assignment = load_assignment(name, chosen, takes_mtls, tcp_peers)
            policy = effective_policy(rule, port.port, subset_name)
            setting = effective_setting(policy.load_balancer, snapshot.mesh_config)
            result.append(
                localize(assignment, setting, policy.outlier_detection, client, labels_of)
            )
    return result


def depends_on_client_locality(snapshot: MeshSnapshot, service: Service) -> bool:
    """Whether some load assignment of `service` differs by the client's locality."""
    if service.resolution is not Resolution.EDS:
        return False
    rule = destination_rule_for(snapshot, service)
    for port in service.ports:
        for subset in (None, *subsets_of(rule)):
            policy = effective_policy(rule, port.port, subset.name if subset else "")
            setting = effective_setting(policy.load_balancer, snapshot.mesh_config)
            if depends_on_client(setting, policy.outlier_detection):
                return True
    return False


def failover_priority_labels(snapshot: MeshSnapshot) -> frozenset[str]:
    """Every label some failoverPriority of the snapshot's DestinationRules names."""
    found: set[str] = set()
    settings = [getattr(snapshot.mesh_config, "locality_lb_setting", None)]
    for rule in snapshot.destination_rules:
        policies = [rule.spec.traffic_policy, *(s.traffic_policy for s in rule.spec.subsets)]
        for policy in policies:
            if policy is None:
                continue
            for level in (policy, *policy.port_level_settings):
                settings.append(getattr(level.load_balancer, "locality_lb_setting", None))
    for setting in settings:
        found.update(priority_labels(setting))
    return frozenset(found)


def outbound_load_assignments(
    snapshot: MeshSnapshot,
    takes_mtls: TlsPredicate | None = None,
    visible: Callable[[Service], bool] | None = None,
) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """Every EDS load assignment of the mesh, or of the services `visible` accepts."""
    result = []
    for hostname in sorted(snapshot.services):
        service = snapshot.services[hostname]
        if visible is None or visible(service):
            result.extend(service_load_assignments(snapshot, service, takes_mtls))
    return result
