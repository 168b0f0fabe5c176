"""Proxy status as the admin API shows it: the xDS server's view joined with the registry."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from ratline.controlplane.app import ControlPlane
from ratline.registry.instances import parse_node_id

_SHOWN_TYPES = ("CDS", "LDS", "EDS", "RDS")


def proxy_status_json(
    cp: ControlPlane, nodes: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """Every proxy the xDS server has seen (or those of `nodes`), with each type SYNCED /
    STALE / NOT SENT."""
    known = {i.node_id: i for i in cp.registry.instances()}
    if nodes is None:
        statuses = cp.xds.status()
    else:
        found = (cp.xds.proxy_status(node) for node in sorted(set(nodes)))
        statuses = [s for s in found if s is not None]
    out: list[dict[str, Any]] = []
    for status in sorted(statuses, key=lambda s: s.node_id):
        data = status.to_json()
        try:
            _kind, _addr, name, namespace = parse_node_id(status.node_id)
        except ValueError:
            name, namespace = status.node_id, ""
        inst = known.get(status.node_id)
        data["instance"] = name
        data["namespace"] = namespace
        data["workload"] = inst.workload if inst else None
        data["registered"] = inst is not None
        types = data["types"]
        for short in _SHOWN_TYPES:
            types.setdefault(
                short,
                {"state": "NOT SENT", "sent_version": None, "acked_version": None, "nack": None},
            )
        data["latest_snapshot"] = cp.snapshot.version if cp.snapshot else None
        out.append(data)
    return out
