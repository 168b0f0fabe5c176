"""The last line of `ratline up`'s start-up: the addresses to open.

`mesh_urls(run_info)` lists them from run.json: one per HTTP port of each gateway (the
built-in ingress gateway's named `ingress`), then the
dashboard on the control plane's admin port (`ratline dashboard` opens it logged in);
both the foreground runner and `ratline up -d` print it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LOOPBACK_NAMES = {"127.0.0.1", "0.0.0.0", "::", "::1", "localhost", ""}
WEB_PROTOCOLS = {"HTTP": "http", "HTTP2": "http", "GRPC": "http", "HTTPS": "https"}


@dataclass(frozen=True)
class MeshUrl:
    name: str
    """What it is: `ingress` or `dashboard`."""
    url: str


def browsable_host(bind_address: str) -> str:
    """`localhost` for loopback or wildcard binds (what a user types), else the address."""
    return "localhost" if bind_address in LOOPBACK_NAMES else bind_address


def mesh_urls(run_info: Mapping[str, Any]) -> list[MeshUrl]:
    """The URLs a user can open once the mesh is up, in the order they are printed."""
    host = browsable_host(str(run_info.get("bind_address") or ""))
    urls = []
    for gateway in run_info.get("gateways") or ():
        schemes = gateway.get("schemes") or {}
        name = "ingress" if gateway.get("built_in", True) else f"gateway {gateway.get('name')}"
        for port in gateway.get("listen") or ():
            scheme = schemes.get(str(port))
            if scheme:
                urls.append(MeshUrl(name, f"{scheme}://{host}:{port}/"))
    admin = str((run_info.get("control_plane") or {}).get("admin") or "")
    if admin:
        urls.append(MeshUrl("dashboard", f"http://{host}:{admin.rpartition(':')[2]}/ui/"))
    return urls


def ready_line(run_info: Mapping[str, Any]) -> str:
    """`ready: ingress http://localhost:8080/, dashboard http://localhost:PORT/ui/`."""
    urls = mesh_urls(run_info)
    listed = ", ".join(f"{u.name} {u.url}" for u in urls)
    if not any(u.name == "ingress" for u in urls):
        none = "no ingress yet (no Gateway with an HTTP server selects the ingress gateway)"
        return f"ready: {none}" + (f"; {listed}" if listed else "")
    return f"ready: {listed}"
