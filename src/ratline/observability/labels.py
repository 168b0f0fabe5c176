"""Istio's labels from the raw tags Envoy recorded for one series (pure).

Envoy records, per request, the reporter's own identity as literal tags (the control
plane writes them into the proxy's config), the peer's metadata header, principals from
the connection's certificates, the upstream cluster or the inbound port's services, and
the response. `istio_labels` turns one such tag set into Istio's label set; several raw
series (one per peer instance, per content type, ...) may give the same labels, and the
merge sums them. docs/observability.md says how each label is filled.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from ratline.observability.istio_metrics import (
    DESTINATION,
    LABELS,
    RAW_AUTHORITY,
    RAW_CLUSTER,
    RAW_CONTENT_TYPE,
    RAW_OVERRIDE_PREFIX,
    RAW_PEER,
    RAW_REMOVE,
    RAW_ROUTE,
    RAW_SERVICES,
    SOURCE,
    TCP_DROPPED,
    UNKNOWN,
)
from ratline.observability.peer_metadata import PeerMetadata, decode_header

Labels = tuple[tuple[str, str], ...]
"""A label set in a fixed order (hashable)."""

_EMPTY = ("", "-")


def _value(raw: Mapping[str, str], key: str, default: str = UNKNOWN) -> str:
    value = raw.get(key, "")
    return default if value in _EMPTY else value


def service_parts(host: str) -> tuple[str, str]:
    """(destination_service_name, destination_service_namespace) of a service host."""
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        return parts[0], parts[1]
    return host, UNKNOWN


def cluster_service(cluster: str) -> str | None:
    """The service host of an Istio outbound cluster name `outbound|9080|v2|host`."""
    parts = cluster.split("|")
    if len(parts) == 4 and parts[0] == "outbound" and parts[3]:
        return parts[3]
    return None


CATCH_ALL_CLUSTERS = frozenset({"PassthroughCluster", "BlackHoleCluster"})
"""Istio's clusters for hosts outside the registry; their name is the destination service."""
BLOCK_ALL_ROUTE = "block_all"
"""REGISTRY_ONLY's 502 route (no upstream cluster): counted as `BlackHoleCluster`, as Istio."""


def _catch_all_service(raw: Mapping[str, str]) -> str:
    cluster = raw.get(RAW_CLUSTER, "")
    if cluster in CATCH_ALL_CLUSTERS:
        return cluster
    if raw.get(RAW_ROUTE, "") == BLOCK_ALL_ROUTE:
        return "BlackHoleCluster"
    return UNKNOWN


def _expand_host(authority: str, namespace: str) -> str:
    host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    if not host:
        return ""
    dots = host.count(".")
    if dots == 0:
        return f"{host}.{namespace}.svc.cluster.local"
    if dots == 1:
        return f"{host}.svc.cluster.local"
    return host


def pick_service(services: str, authority: str, namespace: str) -> str:
    """The inbound port's service the request was for: the only one, the one its
    :authority names, else the first (Istio reads the inbound cluster's services)."""
    candidates = [s for s in services.split(",") if s]
    if len(candidates) == 1:
        return candidates[0]
    wanted = _expand_host(authority, namespace) if authority not in _EMPTY else ""
    if wanted in candidates:
        return wanted
    if candidates:
        return candidates[0]
    return wanted or UNKNOWN


def _peer_labels(side: str, peer: PeerMetadata | None) -> dict[str, str]:
    if peer is None:
        return {
            f"{side}_workload": UNKNOWN,
            f"{side}_workload_namespace": UNKNOWN,
            f"{side}_app": UNKNOWN,
            f"{side}_version": UNKNOWN,
            f"{side}_canonical_service": UNKNOWN,
            f"{side}_canonical_revision": UNKNOWN,
            f"{side}_cluster": UNKNOWN,
        }
    return {
        f"{side}_workload": peer.workload or UNKNOWN,
        f"{side}_workload_namespace": peer.namespace,
        f"{side}_app": peer.app,
        f"{side}_version": peer.version,
        f"{side}_canonical_service": peer.canonical_service,
        f"{side}_canonical_revision": peer.canonical_revision,
        f"{side}_cluster": peer.cluster_id,
    }


Identity = tuple[tuple[str, str], ...]
"""The reporting proxy's own workload labels, without the side (`workload`, `app`, ...)."""

IDENTITY_KEYS = (
    "workload", "workload_namespace", "app", "version", "canonical_service",
    "canonical_revision", "cluster",
)  # fmt: skip


def identity(own: PeerMetadata) -> Identity:
    """The reporting proxy's identity as the agent knows it (from its node metadata)."""
    return tuple(zip(IDENTITY_KEYS, (
        own.workload or UNKNOWN, own.namespace, own.app, own.version, own.canonical_service,
        own.canonical_revision, own.cluster_id,
    ), strict=True))


def _own_labels(side: str, raw: Mapping[str, str], own: Identity) -> dict[str, str]:
    if own:
        return {f"{side}_{k}": v for k, v in own}
    keys = ("workload", "workload_namespace", "app", "version", "canonical_service",
            "canonical_revision", "cluster")  # fmt: skip
    return {f"{side}_{k}": _value(raw, f"{side}_{k}") for k in keys}


def _derive(raw: Mapping[str, str], tcp: bool, own: Identity) -> dict[str, str]:
    reporter = raw.get("reporter", SOURCE)
    peer = decode_header(raw.get(RAW_PEER, ""))
    labels: dict[str, str] = {"reporter": reporter}
    source_principal = _value(raw, "source_principal")
    destination_principal = _value(raw, "destination_principal")
    if reporter == DESTINATION:
        labels.update(_peer_labels("source", peer))
        labels.update(_own_labels("destination", raw, own))
        service = pick_service(
            raw.get(RAW_SERVICES, ""),
            raw.get(RAW_AUTHORITY, ""),
            labels["destination_workload_namespace"],
        )
        security = "mutual_tls" if source_principal != UNKNOWN else "none"
    else:
        labels.update(_own_labels("source", raw, own))
        labels.update(_peer_labels("destination", peer))
        service = cluster_service(raw.get(RAW_CLUSTER, "")) or _catch_all_service(raw)
        security = UNKNOWN
    name, namespace = service_parts(service) if service != UNKNOWN else (UNKNOWN, UNKNOWN)
    labels.update(
        source_principal=source_principal,
        destination_principal=destination_principal,
        destination_service=service,
        destination_service_name=name,
        destination_service_namespace=namespace,
        connection_security_policy=security,
    )
    if tcp:
        labels["request_protocol"] = "tcp"
    else:
        content_type = raw.get(RAW_CONTENT_TYPE, "")
        labels["request_protocol"] = (
            "grpc" if content_type.startswith("application/grpc") else "http"
        )
        labels["response_code"] = _value(raw, "response_code", "0")
        labels["grpc_response_status"] = _value(raw, "grpc_response_status", "")
    labels["response_flags"] = _value(raw, "response_flags", "-")
    return labels


def _overrides(raw: Mapping[str, str], labels: dict[str, str]) -> None:
    for key, value in raw.items():
        if key.startswith(RAW_OVERRIDE_PREFIX):
            labels[key[len(RAW_OVERRIDE_PREFIX) :]] = UNKNOWN if value in _EMPTY else value
    for key in raw.get(RAW_REMOVE, "").split(","):
        labels.pop(key, None)


@lru_cache(maxsize=65536)
def _cached(raw: tuple[tuple[str, str], ...], tcp: bool, own: Identity) -> Labels:
    data = dict(raw)
    labels = _derive(data, tcp, own)
    _overrides(data, labels)
    order = [k for k in LABELS if k in labels and not (tcp and k in TCP_DROPPED)]
    extra = sorted(k for k in labels if k not in LABELS)
    return tuple((k, labels[k]) for k in [*order, *extra])


def istio_labels(raw: Mapping[str, str], *, tcp: bool = False, own: Identity = ()) -> Labels:
    """Istio's labels for one raw series (memoized: a proxy has few distinct tag sets).

    `own` is the reporting proxy's identity; without it, it is read from raw tags
    (`source_workload`, ... for a source reporter)."""
    return _cached(tuple(sorted(raw.items())), tcp, own)
