"""LDS: the sidecar's outbound HTTP proxy listener and inbound listeners, and gateway listeners.

Every listener holds one HTTP connection manager. Outbound and gateway listeners fetch
their routes over RDS and carry the fault and CORS filters their routes configure;
inbound listeners carry an inline route to the app's cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.dynamic_forward_proxy.v3 import dynamic_forward_proxy_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from ratline.registry.instances import InstancePort
from ratline.translate import names, route_features
from ratline.translate.clusters import dns_cache_config
from ratline.translate.common import ads_config_source, pack_any
from ratline.translate.endpoints import socket_address
from ratline.translate.telemetry_envoy import HcmTelemetry
from ratline.translate.trace_operations import inbound_operation

HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"
FORWARD_PROXY_FILTER = "envoy.filters.http.dynamic_forward_proxy"
STDOUT = "/dev/stdout"


def router_filter() -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=pack_any(router_pb2.Router()))


def forward_proxy_filter() -> hcm_pb2.HttpFilter:
    """Resolves the Host for routes to dynamic forward proxy clusters (passthrough)."""
    config = dynamic_forward_proxy_pb2.FilterConfig(dns_cache_config=dns_cache_config())
    return hcm_pb2.HttpFilter(name=FORWARD_PROXY_FILTER, typed_config=pack_any(config))


def access_logs(mesh_config: Any) -> list[accesslog_pb2.AccessLog]:
    """MeshConfig accessLogFile: `/dev/stdout` → stdout, another path → that file, "" → none."""
    path = getattr(mesh_config, "access_log_file", "") or ""
    if not path:
        return []
    if path == STDOUT:
        logger: Any = stream_pb2.StdoutAccessLog()
        name = "envoy.access_loggers.stdout"
    else:
        logger = file_pb2.FileAccessLog(path=path)
        name = "envoy.access_loggers.file"
    return [accesslog_pb2.AccessLog(name=name, typed_config=pack_any(logger))]


def connection_manager(
    stat_prefix: str,
    *,
    rds: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    forward_proxy: bool = False,
    use_remote_address: bool = False,
    strip_host_port: bool = False,
    mesh_config: Any = None,
    http_filters: Sequence[hcm_pb2.HttpFilter] = (),
    telemetry: HcmTelemetry | None = None,
) -> hcm_pb2.HttpConnectionManager:
    """An HCM with routes over RDS (`rds` names them) or inline, and the router filter last.

    `http_filters` (security: jwt_authn, RBAC, ext_authz) run before the router.
    `telemetry` (metrics, peer metadata, access logs, tracing) replaces MeshConfig's
    access log when given; its filters come first.
    """
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=stat_prefix, strip_any_host_port=strip_host_port
    )
    hcm.use_remote_address.value = use_remote_address
    # WebSocket upgrades pass through, as on every Istio connection manager.
    hcm.upgrade_configs.add(upgrade_type="websocket")
    if rds is not None:
        hcm.rds.route_config_name = rds
        hcm.rds.config_source.CopyFrom(ads_config_source())
    elif route_config is not None:
        hcm.route_config.CopyFrom(route_config)
    if telemetry is not None:
        hcm.http_filters.extend(telemetry.filters)
    if forward_proxy:
        hcm.http_filters.append(forward_proxy_filter())
    hcm.http_filters.extend(http_filters)
    hcm.http_filters.append(router_filter())
    if telemetry is None:
        hcm.access_log.extend(access_logs(mesh_config))
    else:
        hcm.access_log.extend(telemetry.access_logs)
        if telemetry.tracing is not None:
            hcm.tracing.CopyFrom(telemetry.tracing)
    return hcm


def _listener(
    name: str,
    address: str,
    port: int,
    hcm: hcm_pb2.HttpConnectionManager,
    direction: base_pb2.TrafficDirection.ValueType,
) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(
        name=name, address=socket_address(address, port), traffic_direction=direction
    )
    chain = listener.filter_chains.add()
    chain.filters.add(name=HCM_FILTER).typed_config.CopyFrom(pack_any(hcm))
    return listener


def http_proxy_listener(
    address: str, port: int, mesh_config: Any, telemetry: HcmTelemetry | None = None
) -> listener_pb2.Listener:
    """`http_proxy`: the app's HTTP_PROXY, routed by Host through RDS `http_proxy`."""
    hcm = connection_manager(
        names.HTTP_PROXY,
        rds=names.HTTP_PROXY,
        forward_proxy=True,
        mesh_config=mesh_config,
        http_filters=route_features.http_filters(),
        telemetry=telemetry,
    )
    return _listener(names.HTTP_PROXY, address, port, hcm, base_pb2.OUTBOUND)


def inbound_route_config(port: int, service: str = "") -> route_pb2.RouteConfiguration:
    """Everything to the app's cluster, with no timeout (as Istio's inbound routes), its
    spans named `SERVICE:PORT/*` as Istio's when the port's service is known."""
    config = route_pb2.RouteConfiguration(name=names.inbound_listener(port))
    host = config.virtual_hosts.add(name=f"inbound|http|{port}", domains=["*"])
    route = host.routes.add(name="default")
    route.match.prefix = "/"
    route.route.cluster = names.inbound_cluster(port)
    route.route.timeout.SetInParent()
    if service:
        route.decorator.operation = inbound_operation(service, port)
    return config


def inbound_listener(
    address: str,
    port: InstancePort,
    mesh_config: Any,
    http_filters: Sequence[hcm_pb2.HttpFilter] = (),
    telemetry: HcmTelemetry | None = None,
) -> listener_pb2.Listener:
    """`inbound|PORT||` on the sidecar's inbound port for one container port."""
    if port.inbound_port is None:
        raise ValueError(f"container port {port.container_port} has no sidecar inbound port")
    hcm = connection_manager(
        f"inbound_{port.container_port}",
        route_config=inbound_route_config(
            port.container_port, telemetry.inbound_service if telemetry is not None else ""
        ),
        mesh_config=mesh_config,
        http_filters=http_filters,
        telemetry=telemetry,
    )
    name = names.inbound_listener(port.container_port)
    return _listener(name, address, port.inbound_port, hcm, base_pb2.INBOUND)


def gateway_listener(
    address: str,
    listen_port: int,
    mesh_config: Any,
    http_filters: Sequence[hcm_pb2.HttpFilter] = (),
    telemetry: HcmTelemetry | None = None,
) -> listener_pb2.Listener:
    """`0.0.0.0_8080`: a gateway's HTTP listener, routed through RDS `http.8080`.

    Routing ignores any port in the Host (clients may name the real or the Istio port).
    """
    name = names.gateway_listener(listen_port)
    hcm = connection_manager(
        f"outbound_{name}",
        rds=names.gateway_route_config(listen_port),
        use_remote_address=True,
        strip_host_port=True,
        mesh_config=mesh_config,
        http_filters=[*http_filters, *route_features.http_filters()],
        telemetry=telemetry,
    )
    return _listener(name, address, listen_port, hcm, base_pb2.OUTBOUND)
