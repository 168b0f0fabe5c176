"""Config a proxy rejected (a NACK), told where the user is looking.

A NACK line is `NACK reviews-v2-0.default RDS: <Envoy's message>`; Envoy's message names
the resource (`Error adding/updating listener(s) 0.0.0.0_8080: …`). When Envoy could not
bind a port, the line also says which program holds it (`procfs`). `NackLog` turns
successive proxy-status answers into what is new: each NACK once, and a line when a
proxy accepts that type again. The runner polls and logs them (foreground `ratline up`
shows them), `ratline up -d` and `ratline proxy-status` print the current ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ratline.runtime.local import procfs

_CANNOT_BIND = re.compile(r"cannot bind '(?P<host>[^']*):(?P<port>\d+)': Address already in use")


def proxy_name(proxy: Mapping[str, Any]) -> str:
    return f"{proxy.get('instance', '')}.{proxy.get('namespace', '')}"


def explain(message: str) -> str:
    """Envoy's NACK message, plus who holds the port when a listener could not bind."""
    found = _CANNOT_BIND.search(message)
    if found is None:
        return message
    port = int(found["port"])
    return f"{message.strip()} (port {port} is {procfs.describe_port_holders(port)})"


NackKey = tuple[str, str, str]
"""(proxy, type, message)."""


def current_nacks(answer: Mapping[str, Any]) -> dict[NackKey, str]:
    """Every NACK in a GET /v1/proxy-status answer, by (proxy, type, message)."""
    found: dict[NackKey, str] = {}
    for proxy in answer.get("proxies") or ():
        types = proxy.get("types") or {}
        for type_name in sorted(types):
            nack = (types.get(type_name) or {}).get("nack")
            if nack:
                found[(proxy_name(proxy), type_name, str(nack))] = str(nack)
    return found


def nack_line(key: NackKey, explained: bool = True) -> str:
    proxy, type_name, message = key
    return f"NACK {proxy} {type_name}: {explain(message) if explained else message}"


def nack_lines(answer: Mapping[str, Any], explained: bool = True) -> list[str]:
    """One line per type a proxy rejected: `NACK reviews-v2-0.default RDS: <detail>`."""
    return sorted(nack_line(key, explained) for key in current_nacks(answer))


class NackLog:
    """What changed between proxy-status answers: new NACKs, and types accepted again."""

    def __init__(self) -> None:
        self._reported: set[NackKey] = set()

    def update(self, answer: Mapping[str, Any]) -> list[str]:
        now = set(current_nacks(answer))
        lines = [nack_line(key) for key in sorted(now - self._reported)]
        still_rejecting = {(proxy, type_name) for proxy, type_name, _ in now}
        present = {proxy_name(p) for p in answer.get("proxies") or ()}
        for proxy, type_name, _ in sorted(self._reported - now):
            if proxy in present and (proxy, type_name) not in still_rejecting:
                lines.append(f"{proxy} accepted its {type_name} config again")
        self._reported = now
        return lines
