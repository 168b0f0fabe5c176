"""`ratline get KIND [NAME]`: the stored resources of a running mesh, kubectl's way.

`-o yaml`/`-o json` print each resource as stored, with the `status` the control plane
computed for it (Gateway API kinds: the conditions Istio's gateway controller writes);
the table shows namespace, name and, for the Gateway API, its main conditions. KIND is
a kind's name, plural or kubectl type name (`gateway` is Istio's; the Gateway API's is
`gateway.gateway.networking.k8s.io`, `gtw` or `kubernetesgateway`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ratline.cli.admin_client import AdminClient
from ratline.cli.meshref import mesh_option
from ratline.cli.output import echo_data, output_option, render_table

_ALIASES = {
    "gtw": "KubernetesGateway",
    "gateway.gateway.networking.k8s.io": "KubernetesGateway",
    "gateways.gateway.networking.k8s.io": "KubernetesGateway",
}


def store_kind(text: str) -> str:
    """The store's kind a user's KIND names (`httproutes` → `HTTPRoute`)."""
    from ratline.api.kinds import GATEWAY_API, KINDS, type_name

    wanted = text.lower()
    if wanted in _ALIASES:
        return _ALIASES[wanted]
    for kind in (*KINDS, *(i.kind for i in GATEWAY_API.values())):
        singular, _, group = type_name(kind).partition(".")
        names = {kind.lower(), f"{kind.lower()}s", type_name(kind), f"{singular}s.{group}"}
        if wanted in names or wanted.rstrip("s") == kind.lower():
            return kind
    raise click.BadParameter(f"unknown kind {text!r}", param_hint="KIND")


def _condition(status: Mapping[str, Any] | None, kind: str) -> str:
    if not status:
        return "-"
    conditions = list(status.get("conditions") or ())
    for parent in status.get("parents") or ():
        conditions += list(parent.get("conditions") or ())
    found = [c.get("status", "-") for c in conditions if c.get("type") == kind]
    if not found:
        return "-"
    return "True" if all(s == "True" for s in found) else "False"


def columns(kind: str) -> list[str]:
    """The table's columns for a store kind: Gateway API kinds show their conditions."""
    if kind in ("KubernetesGateway", "GatewayClass"):
        return ["NAMESPACE", "NAME", "ACCEPTED", "PROGRAMMED", "ORIGIN"]
    if kind.endswith("Route"):
        return ["NAMESPACE", "NAME", "ACCEPTED", "RESOLVEDREFS", "ORIGIN"]
    return ["NAMESPACE", "NAME", "ORIGIN", "FILE"]


def resource_rows(kind: str, items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Table rows under `columns(kind)`."""
    rows = []
    for item in items:
        status = item.get("status")
        cells = {
            "NAMESPACE": item.get("namespace") or "-",
            "NAME": item.get("name") or "-",
            "ACCEPTED": _condition(status, "Accepted"),
            "PROGRAMMED": _condition(status, "Programmed"),
            "RESOLVEDREFS": _condition(status, "ResolvedRefs"),
            "ORIGIN": item.get("origin") or "-",
            "FILE": item.get("file") or "-",
        }
        rows.append([cells[c] for c in columns(kind)])
    return rows


def shown(item: Mapping[str, Any]) -> dict[str, Any]:
    """A resource as `-o yaml` prints it: its document with the computed status."""
    document = dict(item.get("resource") or {})
    if item.get("status") is not None:
        document["status"] = item["status"]
    return document


@click.command(short_help="Stored resources of the running mesh, with their status.")
@click.argument("kind")
@click.argument("name", required=False)
@click.option("-n", "--namespace", default=None, help="Only this namespace.")
@output_option("table")
@mesh_option
def get(kind: str, name: str | None, namespace: str | None, output: str, mesh_dir: Path) -> None:
    """List resources of KIND (or the one named NAME), as kubectl get does."""
    stored = store_kind(kind)
    answer = AdminClient.for_mesh(mesh_dir).get("/v1/resources", {"kind": stored})
    items = [
        item for item in answer.get("resources") or ()
        if (name is None or item.get("name") == name)
        and (namespace is None or item.get("namespace") == namespace)
    ]
    if name is not None and not items:
        raise click.ClickException(f"{kind} {name!r} not found")
    if output != "table":
        documents = [shown(item) for item in items]
        data: Any = documents[0] if name is not None and len(documents) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": documents}
        echo_data(data, output)
        return
    click.echo(render_table(columns(stored), resource_rows(stored, items)))


COMMANDS = [get]
