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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

MAX_NAMES = 5
"""Resource names listed when Envoy's message names none."""


@dataclass(frozen=True)
class Nack:
    proxy: str
    """`reviews-v2-0.default`."""
    node: str
    type_name: str
    """`RDS`."""
    message: str

    @property
    def key(self) -> NackKey:
        return (self.proxy, self.type_name, self.message)

    def line(self, names: Sequence[str] = (), explained: bool = True) -> str:
        """`NACK proxy TYPE: message`; when the message names none of `names` (the
        proxy's resources of that type, one of which was refused), they are listed."""
        text = explain(self.message) if explained else self.message
        if names and not any(name in self.message for name in names):
            if len(names) == 1:
                text += f" (in {self.type_name} resource {names[0]})"
            else:
                shown = ", ".join(names[:MAX_NAMES]) + (", …" if len(names) > MAX_NAMES else "")
                text += f" (in one of its {self.type_name} resources: {shown})"
        return f"NACK {self.proxy} {self.type_name}: {text}"


def current_nacks(answer: Mapping[str, Any]) -> list[Nack]:
    """Every NACK in a GET /v1/proxy-status answer."""
    found = []
    for proxy in answer.get("proxies") or ():
        types = proxy.get("types") or {}
        for type_name in sorted(types):
            nack = (types.get(type_name) or {}).get("nack")
            if nack:
                found.append(Nack(proxy_name(proxy), str(proxy.get("node") or ""), type_name,
                                  str(nack)))
    return sorted(found, key=lambda n: n.key)


def nack_lines(answer: Mapping[str, Any], explained: bool = True) -> list[str]:
    """One line per type a proxy rejected: `NACK reviews-v2-0.default RDS: <detail>`."""
    return [nack.line(explained=explained) for nack in current_nacks(answer)]


def resource_names(resources: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of resources as /v1/config-dump shows them (EDS names its cluster)."""
    names = (str(r.get("name") or r.get("cluster_name") or "") for r in resources)
    return sorted(n for n in names if n)


class NackLog:
    """What changed between proxy-status answers: new NACKs, and types accepted again."""

    def __init__(self) -> None:
        self._reported: set[NackKey] = set()

    def update(self, answer: Mapping[str, Any]) -> tuple[list[Nack], list[str]]:
        """(NACKs not reported before, `PROXY accepted its TYPE config again` lines)."""
        nacks = current_nacks(answer)
        now = {n.key for n in nacks}
        new = [n for n in nacks if n.key not in self._reported]
        still_rejecting = {(proxy, type_name) for proxy, type_name, _ in now}
        present = {proxy_name(p) for p in answer.get("proxies") or ()}
        accepted = [
            f"{proxy} accepted its {type_name} config again"
            for proxy, type_name, _ in sorted(self._reported - now)
            if proxy in present and (proxy, type_name) not in still_rejecting
        ]
        self._reported = now
        return new, accepted
