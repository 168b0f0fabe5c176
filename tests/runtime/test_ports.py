"""The port allocator hands out distinct free ports and takes released ones back."""

from __future__ import annotations

import socket

from ratline.runtime.local.ports import PortAllocator


def test_ports_are_distinct_and_bindable() -> None:
    allocator = PortAllocator()
    ports = allocator.allocate_many(50)
    assert len(set(ports)) == 50
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_reserved_ports_are_never_handed_out(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    probes = iter([5000, 5000, 5001, 5002])
    monkeypatch.setattr("ratline.runtime.local.ports._probe_free_port", lambda host: next(probes))
    allocator = PortAllocator(reserved=[5000])
    assert allocator.allocate() == 5001
    assert allocator.allocate() == 5002
    assert allocator.taken == {5000, 5001, 5002}


def test_release_returns_ports(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    probes = iter([6000, 6000])
    monkeypatch.setattr("ratline.runtime.local.ports._probe_free_port", lambda host: next(probes))
    allocator = PortAllocator()
    assert allocator.allocate() == 6000
    allocator.release([6000])
    assert allocator.allocate() == 6000
