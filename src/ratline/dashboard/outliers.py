"""Outlier ejection as the callers' Envoys see it: which endpoints of a service each
caller's proxy has ejected (`/clusters?format=json`, `failed_outlier_check`).

Ejection is per client in Envoy (each caller counts its own errors), so the service page
asks the proxies of its callers, each with a short timeout; a proxy that does not answer
is left out, and so are callers past `MAX_CALLERS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

import aiohttp

from ratline.registry.instances import WorkloadInstance

FETCH_TIMEOUT_S = 2.0
MAX_CALLERS = 20
"""At most this many callers' proxies are asked (a service page must stay quick)."""


def ejected_hosts(clusters_json: Mapping[str, Any], hostname: str) -> list[str]:
    """`ADDRESS:PORT` of every host of `hostname`'s outbound clusters that failed the
    outlier check (pure)."""
    found = []
    for cluster in clusters_json.get("cluster_statuses") or ():
        name = str(cluster.get("name") or "")
        if not (name.startswith("outbound|") and name.endswith(f"|{hostname}")):
            continue
        for host in cluster.get("host_statuses") or ():
            if (host.get("health_status") or {}).get("failed_outlier_check"):
                socket = (host.get("address") or {}).get("socket_address") or {}
                found.append(f"{socket.get('address')}:{socket.get('port_value')}")
    return found


async def ejections(
    session: aiohttp.ClientSession, callers: Iterable[WorkloadInstance], hostname: str
) -> dict[str, list[str]]:
    """Endpoint address → the caller instances whose proxy ejected it."""
    chosen = [i for i in callers if i.sidecar is not None and i.sidecar.admin_port]
    chosen = sorted(chosen, key=lambda i: (i.namespace, i.name))[:MAX_CALLERS]

    async def one(inst: WorkloadInstance) -> list[str]:
        assert inst.sidecar is not None
        url = f"http://{inst.address}:{inst.sidecar.admin_port}/clusters?format=json"
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as r:
            return ejected_hosts(await r.json(content_type=None), hostname)

    results = await asyncio.gather(*(one(i) for i in chosen), return_exceptions=True)
    found: dict[str, list[str]] = {}
    for inst, hosts in zip(chosen, results, strict=True):
        if isinstance(hosts, list):
            for address in hosts:
                found.setdefault(address, []).append(inst.name)
    return found
