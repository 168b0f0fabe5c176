"""Transparent capture: Istio's istio-iptables rules for a pod, made by a pure function.

`ratline iptables` runs as the injected pod's init container (with NET_ADMIN) and
applies `nat_rules(CaptureConfig)` with `iptables-restore --noflush`, as Istio's
`istio-iptables` does in REDIRECT mode:

- `OUTPUT` sends TCP through `ISTIO_OUTPUT`: the proxy's own traffic (UID/GID 1337)
  returns, loopback traffic stays local, except the app calling its own pod IP through
  `lo` from the proxy (sent to the inbound side, as Istio does), Envoy's inbound
  passthrough source 127.0.0.6 returns; excluded ports and ranges return; the included
  ranges (`*` for all) go to `ISTIO_REDIRECT`, a `REDIRECT --to-ports 15001`
  (Envoy's `virtualOutbound`).
- `PREROUTING` sends TCP through `ISTIO_INBOUND`: the agent's and Envoy's own ports
  (15008, 15090, 15021, 15020) and excluded inbound ports return; the included inbound
  ports (`*` for all) go to `ISTIO_IN_REDIRECT`, a `REDIRECT --to-ports 15006`
  (Envoy's `virtualInbound`).

Both listeners recover the address the app dialled with `SO_ORIGINAL_DST`, which
REDIRECT preserves. Flags are istio-iptables' (`-p -z -u -g -m -i -x -b -d -o -q`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

PROXY_UID = 1337
"""The sidecar's user and group (Istio's): its traffic is never captured."""
OUTBOUND_CAPTURE_PORT = 15001
INBOUND_CAPTURE_PORT = 15006
AGENT_METRICS_PORT = 15020
"""The agent's merged Prometheus endpoint and rewritten app probes."""
AGENT_HEALTH_PORT = 15021
"""The agent's readiness endpoint `/healthz/ready`."""
ENVOY_PROMETHEUS_PORT = 15090
TUNNEL_PORT = 15008
INBOUND_PASSTHROUGH_SOURCE = "127.0.0.6"
"""The source address Envoy's inbound clusters bind to, so their connections to the app
are told apart from the app's own loopback traffic."""
DEFAULT_EXCLUDED_INBOUND = (TUNNEL_PORT, ENVOY_PROMETHEUS_PORT, AGENT_HEALTH_PORT,
                            AGENT_METRICS_PORT)
ALL = "*"


class CaptureConfigError(ValueError):
    """A flag or annotation value that is not a port list or CIDR list; names which."""


@dataclass(frozen=True)
class CaptureConfig:
    """What to capture (Istio's istio-iptables flags)."""

    outbound_port: int = OUTBOUND_CAPTURE_PORT
    inbound_port: int = INBOUND_CAPTURE_PORT
    proxy_uid: int = PROXY_UID
    proxy_gid: int = PROXY_UID
    include_outbound_ranges: str = ALL
    """`-i`: CIDRs whose outbound traffic is captured, `*` for all, "" for none."""
    exclude_outbound_ranges: tuple[str, ...] = ()
    """`-x`."""
    include_inbound_ports: str = ALL
    """`-b`: inbound ports captured, `*` for all, "" for none."""
    exclude_inbound_ports: tuple[int, ...] = DEFAULT_EXCLUDED_INBOUND
    """`-d` (the proxy's own ports are always added)."""
    exclude_outbound_ports: tuple[int, ...] = ()
    """`-o`."""
    include_outbound_ports: tuple[int, ...] = field(default=())
    """`-q`: ports captured even when their destination's range is not included."""


def parse_ports(text: str, what: str) -> tuple[int, ...]:
    """`15090,15021` → (15090, 15021); CaptureConfigError naming `what` otherwise."""
    ports = []
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if not item.isdigit() or not 0 < int(item) < 65536:
            raise CaptureConfigError(f"{what}: {item!r} is not a port (1-65535)")
        ports.append(int(item))
    return tuple(ports)


def parse_ranges(text: str, what: str) -> tuple[str, ...]:
    """`10.0.0.0/8, 192.168.1.1` → normalized IPv4 CIDRs (IPv6 is not captured)."""
    ranges = []
    for item in (r.strip() for r in text.split(",")):
        if not item:
            continue
        if item == ALL:
            ranges.append(ALL)
            continue
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise CaptureConfigError(f"{what}: {item!r} is not an IP range (CIDR)") from None
        if network.version == 4:
            ranges.append(str(network))
    return tuple(ranges)


def _port_rules(chain: str, ports: Sequence[int], target: str) -> list[str]:
    return [f"-A {chain} -p tcp -m tcp --dport {p} -j {target}" for p in ports]


def inbound_rules(c: CaptureConfig) -> list[str]:
    if not c.include_inbound_ports.strip():
        return []
    rules = ["-A PREROUTING -p tcp -j ISTIO_INBOUND"]
    if c.include_inbound_ports.strip() == ALL:
        excluded = list(dict.fromkeys([*DEFAULT_EXCLUDED_INBOUND, *c.exclude_inbound_ports]))
        rules += _port_rules("ISTIO_INBOUND", excluded, "RETURN")
        rules.append("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT")
    else:
        included = parse_ports(c.include_inbound_ports, "includeInboundPorts")
        rules += _port_rules("ISTIO_INBOUND", included, "ISTIO_IN_REDIRECT")
    return rules


def outbound_rules(c: CaptureConfig) -> list[str]:
    out = "ISTIO_OUTPUT"
    rules = [
        "-A OUTPUT -p tcp -j ISTIO_OUTPUT",
        f"-A {out} -s {INBOUND_PASSTHROUGH_SOURCE}/32 -o lo -j RETURN",
    ]
    for kind, ident in (("uid", c.proxy_uid), ("gid", c.proxy_gid)):
        rules += [
            # The proxy calling the pod's own IP (an app calling its own Service): inbound.
            f"-A {out} ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport {TUNNEL_PORT} "
            f"-m owner --{kind}-owner {ident} -j ISTIO_IN_REDIRECT",
            f"-A {out} -o lo -m owner ! --{kind}-owner {ident} -j RETURN",
            f"-A {out} -m owner --{kind}-owner {ident} -j RETURN",
        ]
    rules.append(f"-A {out} -d 127.0.0.1/32 -j RETURN")
    rules += _port_rules(out, c.exclude_outbound_ports, "RETURN")
    rules += _port_rules(out, c.include_outbound_ports, "ISTIO_REDIRECT")
    rules += [f"-A {out} -d {r} -j RETURN" for r in c.exclude_outbound_ranges if r != ALL]
    include = parse_ranges(c.include_outbound_ranges, "includeOutboundIPRanges")
    if ALL in include:
        rules.append(f"-A {out} -j ISTIO_REDIRECT")
    else:
        rules += [f"-A {out} -d {r} -j ISTIO_REDIRECT" for r in include]
        rules.append(f"-A {out} -j RETURN")
    return rules


def nat_rules(c: CaptureConfig) -> str:
    """The `nat` table for `iptables-restore --noflush` (chains created, then rules)."""
    chains = ["ISTIO_INBOUND", "ISTIO_IN_REDIRECT", "ISTIO_OUTPUT", "ISTIO_REDIRECT"]
    lines = ["*nat", *(f":{chain} - [0:0]" for chain in chains)]
    lines += inbound_rules(c)
    lines.append(f"-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports {c.inbound_port}")
    lines += outbound_rules(c)
    lines.append(f"-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports {c.outbound_port}")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def capture_args(c: CaptureConfig) -> list[str]:
    """The `ratline iptables` arguments that make `c` (the injected init container's)."""
    args = [
        "-p", str(c.outbound_port),
        "-z", str(c.inbound_port),
        "-u", str(c.proxy_uid),
        "-g", str(c.proxy_gid),
        "-m", "REDIRECT",
        "-i", c.include_outbound_ranges,
        "-x", ",".join(c.exclude_outbound_ranges),
        "-b", c.include_inbound_ports,
        "-d", ",".join(str(p) for p in c.exclude_inbound_ports),
    ]
    if c.exclude_outbound_ports:
        args += ["-o", ",".join(str(p) for p in c.exclude_outbound_ports)]
    if c.include_outbound_ports:
        args += ["-q", ",".join(str(p) for p in c.include_outbound_ports)]
    return args
