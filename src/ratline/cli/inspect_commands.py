"""Commands that look at a running mesh: `proxy-status`, `proxy-config`, `status`, `version`.

The turning of admin API answers into rows is done by pure functions here and in
`envoy_tables`; the commands only fetch and print.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from ratline import __version__
from ratline.cli.admin_client import AdminClient
from ratline.cli.envoy_tables import TABLES
from ratline.cli.meshref import mesh_option, read_run_info
from ratline.cli.output import echo_data, output_option, render_table
from ratline.registry.instances import WorkloadInstance
from ratline.runtime.local.nacks import nack_lines, proxy_name
from ratline.runtime.local.runfile import live_runner_pid

XDS_TYPES = ("CDS", "LDS", "EDS", "RDS")
PROXY_STATUS_HEADERS = ("NAME", *XDS_TYPES, "XDS", "VERSION")
INSTANCE_HEADERS = ("INSTANCE", "APP PID", "SIDECAR PID", "PORTS", "HTTP_PROXY", "ADMIN", "HEALTH")
GATEWAY_HEADERS = ("GATEWAY", "PID", "LISTEN", "ADMIN", "STATE")

STATUS_TIMEOUT_S = 3.0
"""`ratline status` waits this long for the control plane before calling it not answering."""

VERSION_CHARS = 8
"""Acked versions are content hashes; the table shows each type's first characters."""

Row = list[str]


# --- proxy-status -----------------------------------------------------------------------


def proxy_status_rows(answer: Mapping[str, Any]) -> list[Row]:
    """Rows of `ratline proxy-status` from a GET /v1/proxy-status answer."""
    rows = []
    for proxy in answer.get("proxies") or ():
        types = proxy.get("types") or {}
        states = [str((types.get(t) or {}).get("state") or "NOT SENT") for t in XDS_TYPES]
        versions = []
        for t in XDS_TYPES:
            version = (types.get(t) or {}).get("acked_version")
            short = str(version)[:VERSION_CHARS] if version else None
            if short and short not in versions:
                versions.append(short)
        mode = str(proxy.get("xds") or "-") if proxy.get("connected", True) else "disconnected"
        rows.append([proxy_name(proxy), *states, mode, "/".join(versions) or "-"])
    return sorted(rows)


@click.command("proxy-status", short_help="Every proxy's xDS sync state and NACKs.")
@output_option()
@mesh_option
def proxy_status(output: str, mesh_dir: Path) -> None:
    """The xDS sync state of every proxy (SYNCED, STALE or NOT SENT per type)."""
    answer = AdminClient.for_mesh(mesh_dir).get("/v1/proxy-status")
    if output != "table":
        echo_data(answer, output)
        return
    click.echo(render_table(PROXY_STATUS_HEADERS, proxy_status_rows(answer)))
    nacks = nack_lines(answer)
    if nacks:
        click.echo()
        for line in nacks:
            click.echo(line)


# --- proxy-config -----------------------------------------------------------------------


def resolve_node(
    target: str,
    proxies: Sequence[Mapping[str, Any]],
    instances: Sequence[Mapping[str, Any]],
) -> str:
    """The node id a user means by `target`.

    `target` is a node id, an instance name (`reviews-v2-0`), a workload name
    (`reviews-v2`, meaning its first instance) or a gateway (`istio-ingressgateway`),
    each optionally followed by `.namespace`. Raises LookupError saying what exists.
    """
    if "~" in target:
        return target
    name, namespace = target, None
    if "." in target:
        name, _, namespace = target.partition(".")

    def wanted(ns: object) -> bool:
        return namespace is None or ns == namespace

    by_instance = sorted(
        str(p["node"]) for p in proxies if p.get("instance") == name and wanted(p.get("namespace"))
    )
    if not by_instance:
        by_instance = sorted(
            WorkloadInstance.from_json(i).node_id
            for i in instances
            if i.get("name") == name and wanted(i.get("namespace"))
        )
    if len(by_instance) == 1:
        return by_instance[0]
    if len(by_instance) > 1:
        raise LookupError(f"{target!r} is ambiguous: add .NAMESPACE ({', '.join(by_instance)})")
    of_workload = sorted(
        (WorkloadInstance.from_json(i) for i in instances),
        key=lambda i: (i.namespace, i.name),
    )
    of_workload = [i for i in of_workload if i.workload == name and wanted(i.namespace)]
    if of_workload:
        namespaces = {i.namespace for i in of_workload}
        if len(namespaces) > 1:
            raise LookupError(f"{target!r} is ambiguous: add .NAMESPACE ({sorted(namespaces)})")
        return of_workload[0].node_id
    known = sorted({proxy_name(p) for p in proxies})
    raise LookupError(
        f"no proxy or workload named {target!r}; proxies: {', '.join(known) or 'none'}"
    )


def _show_config(kind: str, target: str, output: str, mesh_dir: Path) -> None:
    client = AdminClient.for_mesh(mesh_dir)
    proxies = client.get("/v1/proxy-status").get("proxies") or []
    instances = client.get("/v1/instances").get("instances") or []
    try:
        node = resolve_node(target, proxies, instances)
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    type_url = {
        "clusters": "CDS", "listeners": "LDS", "routes": "RDS", "endpoints": "EDS", "secret": "SDS"
    }[kind]
    answer = client.get("/v1/config-dump", {"node": node, "type": type_url})
    resources = list(answer.get("resources") or ())
    if output != "table":
        echo_data(resources, output)
        return
    headers, build_rows = TABLES[kind]
    click.echo(render_table(headers, build_rows(resources)))


@click.group("proxy-config", short_help="What one proxy is served: clusters, listeners, routes.")
def proxy_config() -> None:
    """What the control plane serves one proxy: clusters, listeners, routes, endpoints.

    TARGET is an instance (`reviews-v2-0`), a workload (`reviews-v2`: its first
    instance) or a gateway (`istio-ingressgateway`), optionally with `.NAMESPACE`.
    """


def _proxy_config_command(kind: str, summary: str) -> click.Command:
    @click.command(kind, help=summary)
    @click.argument("target")
    @output_option()
    @mesh_option
    def command(target: str, output: str, mesh_dir: Path) -> None:
        _show_config(kind, target, output, mesh_dir)

    return command


for _kind, _summary in (
    ("clusters", "The proxy's clusters (CDS)."),
    ("listeners", "The proxy's listeners (LDS)."),
    ("routes", "The proxy's route configurations (RDS)."),
    ("endpoints", "The proxy's cluster endpoints (EDS)."),
    ("secret", "A gateway's TLS secrets (SDS over ADS): certificates, never keys."),
):
    proxy_config.add_command(_proxy_config_command(_kind, _summary))


# --- status -----------------------------------------------------------------------------


def _pid(value: object) -> str:
    return str(value) if isinstance(value, int) and value > 0 else "-"


def instance_rows(instances: Sequence[Mapping[str, Any]]) -> list[Row]:
    """Rows of the instance table from run.json's (or /v1/instances') instance entries."""
    rows = []
    for instance in instances:
        ports = []
        for port in instance.get("ports") or ():
            text = f"{port.get('container_port')}→app:{port.get('app_port')}"
            if port.get("inbound_port"):
                text += f" in:{port['inbound_port']}"
            ports.append(text)
        sidecar = instance.get("sidecar") or {}
        health = "healthy" if instance.get("healthy") else "unhealthy"
        if instance.get("error"):
            health += f" ({instance['error']})"
        if instance.get("restarts"):
            health += f", {instance['restarts']} restarts"
        rows.append(
            [
                f"{instance.get('name')}.{instance.get('namespace')}",
                _pid(instance.get("app_pid")),
                _pid(instance.get("proxy_pid")),
                ", ".join(ports) or "-",
                f"127.0.0.1:{sidecar['outbound_port']}" if sidecar.get("outbound_port") else "-",
                str(sidecar.get("admin_port") or "-"),
                health,
            ]
        )
    return sorted(rows)


def _listen_text(gateway: Mapping[str, Any], host: str) -> str:
    """Listen addresses: ports (ints) become `host:port`, strings are kept."""
    listen = gateway.get("listen") or ()
    if isinstance(listen, (str, int)):
        listen = [listen]
    return ", ".join(f"{host}:{x}" if isinstance(x, int) else str(x) for x in listen) or "-"


def gateway_rows(gateways: Sequence[Mapping[str, Any]], host: str = "127.0.0.1") -> list[Row]:
    """Rows of the gateway table from run.json's gateway entries."""
    rows = []
    for gateway in gateways:
        name = str(gateway.get("name") or "-")
        if gateway.get("namespace"):
            name += f".{gateway['namespace']}"
        state = "ready" if gateway.get("ready", True) else "starting"
        if gateway.get("error"):
            state += f" ({gateway['error']})"
        if gateway.get("restarts"):
            state += f", {gateway['restarts']} restarts"
        rows.append(
            [
                name,
                _pid(gateway.get("pid")),
                _listen_text(gateway, host),
                str(gateway.get("admin_port") or "-"),
                state,
            ]
        )
    return sorted(rows)


def control_plane_line(run_info: Mapping[str, Any], status: Mapping[str, Any] | None) -> str:
    info = dict(run_info.get("control_plane") or {})
    if status is None:
        return (
            f"Control plane: PID {_pid(info.get('pid'))}, admin {info.get('admin', '-')} "
            "(not answering)"
        )
    return (
        f"Control plane: PID {_pid(status.get('pid'))}, xDS {status.get('xds', '-')}, "
        f"admin {status.get('admin', '-')}, snapshot {status.get('snapshot_version', '-')}, "
        f"config {status.get('config_version', '-')}, {status.get('proxies', 0)} proxies"
    )


def render_status(run_info: Mapping[str, Any], status: Mapping[str, Any] | None) -> str:
    """The whole `ratline status` text."""
    mesh = run_info.get("mesh_dir") or (status or {}).get("mesh_dir") or "-"
    lines = [
        f"Mesh: {mesh} (runner PID {_pid(run_info.get('runner_pid'))})",
        control_plane_line(run_info, status),
        "",
        render_table(INSTANCE_HEADERS, instance_rows(run_info.get("instances") or ())),
    ]
    gateways = run_info.get("gateways") or ()
    if gateways:
        admin = str((run_info.get("control_plane") or {}).get("admin") or "")
        host = admin.rpartition(":")[0] or "127.0.0.1"
        lines += ["", render_table(GATEWAY_HEADERS, gateway_rows(gateways, host))]
    errors = run_info.get("errors") or ()
    if errors:
        lines += ["", *(f"Error: {error}" for error in errors)]
    return "\n".join(lines)


def _control_plane_status(mesh_dir: Path) -> dict[str, Any] | None:
    """GET /v1/status of the mesh's control plane (with the mesh's admin credential);
    None if no mesh runs there or its control plane does not answer."""
    try:
        client = AdminClient.for_mesh(mesh_dir)
        client.timeout_s = STATUS_TIMEOUT_S
        answer: dict[str, Any] = client.get("/v1/status")
    except click.ClickException:
        return None
    return answer


def control_plane_json(
    run_info: Mapping[str, Any], status: Mapping[str, Any] | None
) -> dict[str, Any]:
    """`control_plane` of `ratline status -o json`: the live status when it answers, else
    what run.json says; `pid` and `answering` are always there."""
    recorded = dict(run_info.get("control_plane") or {})
    if status is not None:
        return {**status, "answering": True}
    return {**recorded, "pid": recorded.get("pid"), "answering": False}


@click.command(short_help="The running mesh: PIDs, ports, health, gateway.")
@output_option()
@mesh_option
def status(output: str, mesh_dir: Path) -> None:
    """The running mesh: control plane, instances with their PIDs and ports, gateways."""
    run_info = read_run_info(mesh_dir)
    cp_status = _control_plane_status(mesh_dir)
    if run_info.get("mode") == "kubernetes":  # `ratline controlplane`: no runner
        if output != "table":
            echo_data({"run": run_info, "control_plane": cp_status}, output)
            return
        cp = run_info.get("control_plane") or {}
        state = "answering" if cp_status is not None else "NOT ANSWERING"
        click.echo(f"control plane (Kubernetes) PID {cp.get('pid')}: {state}")
        for key in ("cluster", "xds", "admin", "ca", "webhook", "identity"):
            click.echo(f"  {key}: {cp.get(key)}")
        return
    if live_runner_pid(mesh_dir.resolve()) is None:
        click.echo(
            f"warning: the runner (PID {run_info.get('runner_pid')}) is gone; "
            f"`ratline down --mesh {mesh_dir.resolve()}` stops what it left running",
            err=True,
        )
    if output != "table":
        echo_data({"run": run_info, "control_plane": control_plane_json(run_info, cp_status)},
                  output)
        return
    click.echo(render_status(run_info, cp_status))


@click.command(short_help="Client and control plane versions.")
@output_option()
@mesh_option
def version(output: str, mesh_dir: Path) -> None:
    """The client's version, and the running control plane's if there is one."""
    cp_status = _control_plane_status(mesh_dir)
    cp_version = None
    if cp_status is not None:
        cp_version = str(cp_status.get("version") or "unknown")
    if output != "table":
        echo_data({"client": __version__, "control_plane": cp_version}, output)
        return
    click.echo(f"client version: {__version__}")
    if cp_version is not None:
        click.echo(f"control plane version: {cp_version}")


COMMANDS = [proxy_status, proxy_config, status, version]
