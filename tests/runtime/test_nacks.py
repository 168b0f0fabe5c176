"""NACK lines: once per rejection, with the resource when Envoy's message does not name
it, a line when the type is accepted again, and who holds a port Envoy could not bind."""

from __future__ import annotations

import os
import socket
from typing import Any

from ratline.runtime.local.nacks import NackLog, current_nacks, explain, nack_lines

NODE = "sidecar~127.0.0.1~hello-v1-0.default~default.svc.cluster.local"


def answer(nacks: dict[str, str | None], *, present: bool = True) -> dict[str, Any]:
    if not present:
        return {"proxies": []}
    types = {t: {"state": "STALE" if m else "SYNCED", "nack": m} for t, m in nacks.items()}
    return {"proxies": [{"node": NODE, "instance": "hello-v1-0", "namespace": "default",
                         "types": types}]}


def test_each_nack_once_then_accepted_again() -> None:
    log = NackLog()
    new, accepted = log.update(answer({"RDS": "bad route", "CDS": None}))
    assert [n.line(["http_proxy"]) for n in new] == [
        "NACK hello-v1-0.default RDS: bad route (in RDS resource http_proxy)"
    ]
    assert new[0].node == NODE and accepted == []
    assert log.update(answer({"RDS": "bad route"})) == ([], [])
    new, accepted = log.update(answer({"RDS": "worse route"}))
    assert [n.message for n in new] == ["worse route"] and accepted == []
    accepted_again = ["hello-v1-0.default accepted its RDS config again"]
    assert log.update(answer({"RDS": None})) == ([], accepted_again)
    # A proxy that went away has not accepted anything.
    log.update(answer({"LDS": "bad listener"}))
    assert log.update(answer({}, present=False)) == ([], [])


def test_resources_are_listed_only_when_the_message_names_none() -> None:
    nack = current_nacks(answer({"LDS": "Error adding/updating listener(s) inbound|8000||: x"}))[0]
    assert nack.line(["http_proxy", "inbound|8000||"]).endswith("inbound|8000||: x")
    listed = nack.line([f"r{i}" for i in range(7)], explained=False)
    assert listed.endswith("(in one of its LDS resources: r0, r1, r2, r3, r4, …)")


def test_a_port_envoy_could_not_bind_names_its_holder() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        message = (f"Error adding/updating listener(s) 0.0.0.0_{port}: cannot bind "
                   f"'127.0.0.1:{port}': Address already in use")
        assert explain(message).endswith(f"(port {port} is in use by PID {os.getpid()} "
                                         f"({explain_command()}))")
        assert nack_lines(answer({"LDS": message}))[0].startswith(
            f"NACK hello-v1-0.default LDS: {message} (port {port} is in use by PID")
    assert explain("no port here") == "no port here"


def explain_command() -> str:
    with open(f"/proc/{os.getpid()}/cmdline", "rb") as f:
        return " ".join(p.decode() for p in f.read().split(b"\0") if p)
