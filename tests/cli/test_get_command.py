"""`ratline get`: kind names as users type them, and the table of conditions."""

from __future__ import annotations

import click
import pytest

from ratline.cli.get_command import columns, resource_rows, shown, store_kind


@pytest.mark.parametrize(
    ("typed", "kind"),
    [
        ("gateway", "Gateway"),
        ("gateways.networking.istio.io", "Gateway"),
        ("gtw", "KubernetesGateway"),
        ("gateway.gateway.networking.k8s.io", "KubernetesGateway"),
        ("HTTPRoutes", "HTTPRoute"),
        ("vs", None),
    ],
)
def test_kind_names(typed: str, kind: str | None) -> None:
    if kind is None:
        with pytest.raises(click.BadParameter):
            store_kind(typed)
    else:
        assert store_kind(typed) == kind


def test_route_rows_show_accepted_and_resolved_refs() -> None:
    status = {"parents": [{"conditions": [
        {"type": "Accepted", "status": "True"}, {"type": "ResolvedRefs", "status": "False"}]}]}
    item = {"namespace": "default", "name": "r", "origin": "applied", "status": status,
            "resource": {"kind": "HTTPRoute"}}
    assert columns("HTTPRoute")[2:4] == ["ACCEPTED", "RESOLVEDREFS"]
    assert resource_rows("HTTPRoute", [item]) == [["default", "r", "True", "False", "applied"]]
    assert shown(item) == {"kind": "HTTPRoute", "status": status}
