"""The last line of `ratline up`'s start-up: the addresses to open.

`mesh_urls(run_info)` lists them from run.json: one per ingress gateway port now; a new
kind (the dashboard) is one more entry here, and both the foreground runner and
`ratline up -d` print it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LOOPBACK_NAMES = {"127.0.0.1", "0.0.0.0", "::", "::1", "localhost", ""}
WEB_PROTOCOLS = {"HTTP": "http", "HTTP2": "http", "GRPC": "http", "HTTPS": "https"}


@dataclass(frozen=True)
class MeshUrl:
    name: str
    """What it is: `ingress`, later `dashboard`."""
    url: str


def browsable_host(bind_address: str) -> str:
    """`localhost` for loopback or wildcard binds (what a user types), else the address."""
    return "localhost" if bind_address in LOOPBACK_NAMES else bind_address


def gateway_schemes(
    gateway_docs: Iterable[Mapping[str, Any]], gateway_labels: Mapping[str, str], port_offset: int
) -> dict[int, str]:
    """`http` or `https` for each listen port whose Gateway server speaks HTTP (other
    protocols have no URL to open), from the Gateways that select the gateway."""
    schemes: dict[int, str] = {}
    for doc in gateway_docs:
        spec = doc.get("spec") or {}
        selector = spec.get("selector") or {}
        if not isinstance(selector, Mapping) or any(
            gateway_labels.get(k) != v for k, v in selector.items()
        ):
            continue
        for server in spec.get("servers") or ():
            port = (server or {}).get("port") or {}
            number, protocol = port.get("number"), str(port.get("protocol") or "HTTP").upper()
            if not isinstance(number, int) or number <= 0 or protocol not in WEB_PROTOCOLS:
                continue
            listen = number + port_offset if number < 1024 else number
            schemes.setdefault(listen, WEB_PROTOCOLS[protocol])
    return schemes


def mesh_urls(run_info: Mapping[str, Any]) -> list[MeshUrl]:
    """The URLs a user can open once the mesh is up, in the order they are printed."""
    host = browsable_host(str(run_info.get("bind_address") or ""))
    urls = []
    for gateway in run_info.get("gateways") or ():
        schemes = gateway.get("schemes") or {}
        for port in gateway.get("listen") or ():
            scheme = schemes.get(str(port))
            if scheme:
                urls.append(MeshUrl("ingress", f"{scheme}://{host}:{port}/"))
    return urls


def ready_line(run_info: Mapping[str, Any]) -> str:
    """`ready: ingress http://localhost:8080/` (several URLs are joined with commas)."""
    urls = mesh_urls(run_info)
    if not urls:
        return "ready: no ingress yet (no Gateway with an HTTP server selects the ingress gateway)"
    return "ready: " + ", ".join(f"{u.name} {u.url}" for u in urls)
