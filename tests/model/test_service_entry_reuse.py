"""A ServiceEntry without a workload selector is built once while it is the same object;
an edited one (a new object) is built again; a selecting one always reads the entries."""

from __future__ import annotations

from typing import Any

from ratline.api import load_text
from ratline.model.services import build_services

ENTRY = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: default}
spec:
  hosts: [api.partner.example]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 443, name: https, protocol: TLS}]
  endpoints: [{address: 10.9.0.1}]
"""
SELECTING = """\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: picked, namespace: default}
spec:
  hosts: [picked.example]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: picked}}
"""


def _workload_entry(address: str) -> str:
    return (
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        f"metadata: {{name: we-{address}, namespace: default}}\n"
        f"spec: {{address: {address}, labels: {{app: picked}}}}\n"
    )


def _load(text: str) -> list[Any]:
    result = load_text(text, "test.yaml")
    result.raise_for_errors()
    return list(result.resources)


def test_the_same_entry_object_keeps_its_services_and_an_edit_is_seen() -> None:
    entry = _load(ENTRY)
    first = build_services(entry, [])
    assert build_services(entry, [])["api.partner.example"] is first["api.partner.example"]
    edited = _load(ENTRY.replace("10.9.0.1", "10.9.0.7"))
    service = build_services(edited, [])["api.partner.example"]
    assert [e.address for e in service.endpoints[443]] == ["10.9.0.7"]


def test_a_selecting_entry_reads_the_workload_entries_every_time() -> None:
    entry = _load(SELECTING)
    one = build_services(entry + _load(_workload_entry("10.1.0.1")), [])
    two = build_services(
        entry + _load(_workload_entry("10.1.0.1") + "---\n" + _workload_entry("10.1.0.2")), []
    )
    assert [e.address for e in one["picked.example"].endpoints[80]] == ["10.1.0.1"]
    assert [e.address for e in two["picked.example"].endpoints[80]] == ["10.1.0.1", "10.1.0.2"]
