"""Envoy config (as the control plane serves it, in proto JSON) turned into table rows.

Pure functions behind `ratline proxy-config`: listeners, routes, clusters and endpoints,
in the columns istioctl uses. Accepts both JSON spellings of proto fields (`route_config_name`
and `routeConfigName`).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

Row = list[str]

CLUSTER_HEADERS = ("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE")
LISTENER_HEADERS = ("NAME", "ADDRESS", "PORT", "ROUTE/DESTINATION")
ROUTE_HEADERS = ("NAME", "VHOST NAME", "DOMAINS", "MATCH", "DESTINATION")
ENDPOINT_HEADERS = ("ENDPOINT", "STATUS", "CLUSTER")

HCM_TYPE = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
TCP_PROXY_TYPE = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"


def field(message: Mapping[str, Any] | None, name: str, default: Any = None) -> Any:
    """`message[name]` under its snake_case or camelCase spelling."""
    if not message:
        return default
    if name in message:
        return message[name]
    head, *rest = name.split("_")
    camel = head + "".join(part.capitalize() for part in rest)
    return message.get(camel, default)


def _type_name(typed: Mapping[str, Any] | None) -> str:
    return str(field(typed, "@type", "")).rpartition("/")[2]


# --- clusters ---------------------------------------------------------------------------


def parse_cluster_name(name: str) -> tuple[str, str, str, str]:
    """(fqdn, port, subset, direction) of `outbound|9080|v1|reviews.default.svc.cluster.local`.

    Names not in that form (BlackHoleCluster) come back as (name, "-", "-", "-").
    """
    parts = name.split("|")
    if len(parts) == 4 and parts[0] in ("inbound", "outbound"):
        direction, port, subset, fqdn = parts
        return fqdn, port, subset or "-", direction
    return name, "-", "-", "-"


def cluster_type(cluster: Mapping[str, Any]) -> str:
    custom = field(cluster, "cluster_type")
    if custom:
        return str(field(custom, "name", "CUSTOM"))
    return str(field(cluster, "type", "STATIC"))


def cluster_rows(clusters: Sequence[Mapping[str, Any]]) -> list[Row]:
    rows = []
    for cluster in clusters:
        fqdn, port, subset, direction = parse_cluster_name(str(field(cluster, "name", "")))
        rows.append([fqdn, port, subset, direction, cluster_type(cluster)])
    return sorted(rows, key=lambda r: (r[3] == "-", r[0], r[1], r[2], r[3]))


# --- listeners --------------------------------------------------------------------------


def socket_address(address: Mapping[str, Any] | None) -> tuple[str, str]:
    """(address, port) of an Envoy Address (socket or pipe)."""
    sock = field(address, "socket_address")
    if sock:
        return str(field(sock, "address", "")), str(field(sock, "port_value", 0))
    pipe = field(address, "pipe")
    if pipe:
        return str(field(pipe, "path", "")), "-"
    return "-", "-"


def filter_chain_destination(chain: Mapping[str, Any]) -> str:
    """Where a filter chain sends traffic: `Route: http_proxy`, `Cluster: inbound|9080||`."""
    targets = []
    for network_filter in field(chain, "filters", ()) or ():
        typed = field(network_filter, "typed_config") or {}
        kind = _type_name(typed)
        if kind == HCM_TYPE:
            rds = field(typed, "rds")
            if rds:
                targets.append(f"Route: {field(rds, 'route_config_name', '')}")
            else:
                inline = field(typed, "route_config") or {}
                targets.append(f"Inline Route: {field(inline, 'name', '') or '-'}")
        elif kind == TCP_PROXY_TYPE:
            cluster = field(typed, "cluster")
            if cluster:
                targets.append(f"Cluster: {cluster}")
            else:
                weighted = field(field(typed, "weighted_clusters"), "clusters", ()) or ()
                names = ", ".join(str(field(c, "name", "")) for c in weighted)
                targets.append(f"Clusters: {names}")
        elif kind:
            targets.append(kind.rpartition(".")[2])
    return "; ".join(targets) or "-"


def listener_rows(listeners: Sequence[Mapping[str, Any]]) -> list[Row]:
    """One row per filter chain (and default filter chain) of each listener."""
    rows = []
    for listener in listeners:
        name = str(field(listener, "name", ""))
        address, port = socket_address(field(listener, "address"))
        chains = list(field(listener, "filter_chains", ()) or ())
        default_chain = field(listener, "default_filter_chain")
        if default_chain:
            chains.append(default_chain)
        if not chains:
            rows.append([name, address, port, "-"])
        for chain in chains:
            rows.append([name, address, port, filter_chain_destination(chain)])
    return sorted(rows, key=lambda r: (_int_or_max(r[2]), r[0]))


def _int_or_max(text: str) -> int:
    return int(text) if text.isdigit() else 1 << 31


# --- routes -----------------------------------------------------------------------------


def route_match(match: Mapping[str, Any] | None) -> str:
    """A route match as istioctl shows it: `/productpage`, `/static*`, `/*`, plus headers."""
    if match is None:
        return "-"
    if field(match, "path") is not None:
        text = str(field(match, "path"))
    elif field(match, "prefix") is not None:
        text = f"{field(match, 'prefix')}*"
    elif field(match, "path_separated_prefix") is not None:
        text = f"{field(match, 'path_separated_prefix')}/*"
    elif field(match, "safe_regex") is not None:
        text = f"~{field(field(match, 'safe_regex'), 'regex', '')}"
    else:
        text = "/*"
    for header in field(match, "headers", ()) or ():
        text += f" [{field(header, 'name', '')}{_header_condition(header)}]"
    return text


def _header_condition(header: Mapping[str, Any]) -> str:
    string_match = field(header, "string_match")
    if string_match:
        for how, symbol in (("exact", "="), ("prefix", "^="), ("suffix", "$=")):
            if field(string_match, how) is not None:
                return f"{symbol}{field(string_match, how)}"
        regex = field(field(string_match, "safe_regex"), "regex")
        if regex is not None:
            return f"~{regex}"
    if field(header, "present_match"):
        return " present"
    return ""


def route_destination(route: Mapping[str, Any]) -> str:
    """Where a route sends a request: a cluster, weighted clusters, a redirect or a reply."""
    action = field(route, "route")
    if action:
        cluster = field(action, "cluster")
        if cluster:
            return str(cluster)
        weighted = field(field(action, "weighted_clusters"), "clusters", ()) or ()
        if weighted:
            return ", ".join(f"{field(c, 'name', '')} {field(c, 'weight', 0)}%" for c in weighted)
        header = field(action, "cluster_header")
        return f"header {header}" if header else "-"
    if field(route, "redirect") is not None:
        return "redirect"
    direct = field(route, "direct_response")
    if direct is not None:
        return f"direct response {field(direct, 'status', '')}"
    return "-"


def route_domains(domains: Sequence[str]) -> str:
    """The first domain, and how many more (the rest are port/short-name variants)."""
    if not domains:
        return "-"
    more = len(domains) - 1
    return f"{domains[0]} + {more} more" if more else str(domains[0])


def route_rows(route_configs: Sequence[Mapping[str, Any]]) -> list[Row]:
    rows = []
    for config in route_configs:
        name = str(field(config, "name", ""))
        for vhost in field(config, "virtual_hosts", ()) or ():
            vhost_name = str(field(vhost, "name", ""))
            domains = route_domains(list(field(vhost, "domains", ()) or ()))
            routes = field(vhost, "routes", ()) or ()
            if not routes:
                rows.append([name, vhost_name, domains, "-", "-"])
            for route in routes:
                rows.append(
                    [
                        name,
                        vhost_name,
                        domains,
                        route_match(field(route, "match")),
                        route_destination(route),
                    ]
                )
    return rows


# --- endpoints --------------------------------------------------------------------------


def endpoint_rows(assignments: Sequence[Mapping[str, Any]]) -> list[Row]:
    """One row per endpoint of each ClusterLoadAssignment (sorted by cluster, address)."""
    rows = []
    for assignment in assignments:
        cluster = str(field(assignment, "cluster_name", ""))
        for locality in field(assignment, "endpoints", ()) or ():
            for lb_endpoint in field(locality, "lb_endpoints", ()) or ():
                endpoint = field(lb_endpoint, "endpoint") or {}
                address, port = socket_address(field(endpoint, "address"))
                status = str(field(lb_endpoint, "health_status") or "HEALTHY")
                if status == "UNKNOWN":
                    status = "HEALTHY"
                rows.append([f"{address}:{port}", status, cluster])
        if not field(assignment, "endpoints"):
            rows.append(["-", "NO ENDPOINTS", cluster])
    return sorted(rows, key=lambda r: (r[2], r[0]))


SECRET_HEADERS = ("RESOURCE NAME", "TYPE", "SERIAL NUMBER", "NOT AFTER", "SUBJECT")


def _pem_certificate(value: Mapping[str, Any]) -> Any:
    from cryptography import x509  # only this table needs it

    text = value.get("inline_bytes")
    try:
        return x509.load_pem_x509_certificate(base64.b64decode(str(text or "")))
    except ValueError:
        return None


def secret_rows(resources: Sequence[Mapping[str, Any]]) -> list[Row]:
    """SDS secrets (as `istioctl proxy-config secret`): certificate, never the key."""
    rows = []
    for secret in resources:
        if "tls_certificate" in secret:
            kind, value = "Cert Chain", secret["tls_certificate"].get("certificate_chain", {})
        else:
            kind = "CA"
            value = (secret.get("validation_context") or {}).get("trusted_ca", {})
        cert = _pem_certificate(value)
        rows.append([
            str(secret.get("name", "")),
            kind,
            format(cert.serial_number, "x") if cert else "-",
            cert.not_valid_after_utc.isoformat() if cert else "-",
            cert.subject.rfc4514_string() if cert else "-",
        ])
    return rows


TABLES = {
    "clusters": (CLUSTER_HEADERS, cluster_rows),
    "listeners": (LISTENER_HEADERS, listener_rows),
    "routes": (ROUTE_HEADERS, route_rows),
    "endpoints": (ENDPOINT_HEADERS, endpoint_rows),
    "secret": (SECRET_HEADERS, secret_rows),
}
"""For each proxy-config subcommand: its headers and its row builder."""
