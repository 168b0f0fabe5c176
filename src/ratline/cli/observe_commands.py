"""Commands for the mesh's telemetry: `prometheus-config`, `traces`, `dashboard`."""

from __future__ import annotations

import webbrowser
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from ratline.api.schemas.common import parse_duration
from ratline.cli.admin_client import AdminClient
from ratline.cli.meshref import admin_url, mesh_option, read_run_info
from ratline.cli.output import echo_data, output_option, render_table
from ratline.observability.prometheus_config import prometheus_config
from ratline.runtime.local.startup import mesh_urls
from ratline.settings import state_dir

ADMIN_TOKEN_FILE = "admin-token"
TRACE_HEADERS = ("TRACE ID", "ROOT", "DURATION", "SPANS", "SERVICES", "ERRORS")


@click.command("prometheus-config")
@click.option("--scrape-interval", default="15s", show_default=True)
@click.option("--sd-refresh", default="5s", show_default=True,
              help="How often Prometheus asks the control plane for targets.")
@mesh_option
def prometheus_config_command(scrape_interval: str, sd_refresh: str, mesh_dir: Path) -> None:
    """A prometheus.yml that finds the mesh by itself.

    Targets come from the control plane's HTTP service discovery."""
    token = state_dir(mesh_dir.resolve()) / ADMIN_TOKEN_FILE
    config = prometheus_config(admin_url(mesh_dir), str(token),
                               scrape_interval=scrape_interval, sd_refresh=sd_refresh)
    click.echo(yaml.safe_dump(config, sort_keys=False), nl=False)


def trace_rows(traces: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            str(t["trace_id"]),
            f"{t['root_service']} {t['root_name']}",
            f"{t['duration_ms']:.1f}ms",
            str(t["span_count"]),
            ",".join(t["services"]),
            str(t["errors"]),
        ]
        for t in traces
    ]


def span_lines(trace: Mapping[str, Any]) -> list[str]:
    """The spans of one trace as an indented tree (children under their parent)."""
    spans = list(trace.get("spans") or ())
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[Mapping[str, Any]]] = {}
    for s in spans:
        parent = s["parent_span_id"] if s["parent_span_id"] in ids else ""
        children.setdefault(parent, []).append(s)
    start = int(trace.get("start_unix_nano") or 0)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for s in sorted(children.get(parent, ()), key=lambda s: s["start_unix_nano"]):
            offset = (int(s["start_unix_nano"]) - start) / 1e6
            lines.append(
                f"{'  ' * depth}{s['service']} {s['kind']} {s['name']} "
                f"+{offset:.1f}ms {s['duration_ms']:.1f}ms"
                + (f" {s['status']}" if s["status"] == "ERROR" else "")
            )
            walk(s["span_id"], depth + 1)

    walk("", 0)
    return lines


@click.command("traces")
@click.argument("trace_id", required=False)
@click.option("--service", default=None, help="Only traces with a span of this service.")
@click.option("--min-duration", default=None, help="Only traces at least this long (100ms).")
@click.option("--limit", default=20, show_default=True)
@output_option()
@mesh_option
def traces(trace_id: str | None, service: str | None, min_duration: str | None, limit: int,
           output: str, mesh_dir: Path) -> None:
    """Recent traces (or one trace's spans).

    From the control plane's span store."""
    client = AdminClient.for_mesh(mesh_dir)
    if trace_id:
        trace = client.get(f"/v1/traces/{trace_id}")
        if output != "table":
            echo_data(trace, output)
            return
        click.echo("\n".join(span_lines(trace)))
        return
    query = {"limit": str(limit)}
    if service:
        query["service"] = service
    if min_duration:
        try:
            query["min_duration_ms"] = str(parse_duration(min_duration) * 1000)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--min-duration") from None
    answer = client.get("/v1/traces", query)
    if output != "table":
        echo_data(answer, output)
        return
    click.echo(render_table(TRACE_HEADERS, trace_rows(answer.get("traces") or ())))


@click.group("dashboard", invoke_without_command=True)
@click.option("--open/--no-open", "open_browser", default=True, show_default=True,
              help="Open the login link in a browser (when one is available).")
@mesh_option
@click.pass_context
def dashboard(ctx: click.Context, open_browser: bool, mesh_dir: Path) -> None:
    """The mesh's web dashboard, logged in (or an add-on's URL).

    Prints a one-time login link to the dashboard the control plane serves, and opens it
    in a browser when one is available. The link works once, for two minutes; the page
    asks for the admin token (DIR/.ratline/admin-token) when opened without one."""
    if ctx.invoked_subcommand is not None:
        return
    urls = [u.url for u in mesh_urls(read_run_info(mesh_dir)) if u.name == "dashboard"]
    if not urls:
        raise click.ClickException(f"{mesh_dir}: the control plane has not started yet")
    answer = AdminClient.for_mesh(mesh_dir).post("/v1/dashboard/login-codes", b"")
    url = urls[0].removesuffix("/ui/") + str(answer["path"])
    click.echo(url)
    if open_browser and not webbrowser.open(url):
        click.echo("(no browser found here: open the link above)", err=True)


@dashboard.command("prometheus")
@click.option("--browser/--no-browser", default=False, help="Open it in a browser too.")
@mesh_option
def dashboard_prometheus(browser: bool, mesh_dir: Path) -> None:
    """The Prometheus that `ratline up` started for the mesh."""
    addon = (read_run_info(mesh_dir).get("addons") or {}).get("prometheus") or {}
    url = addon.get("url")
    if not url:
        raise click.ClickException(
            "no Prometheus runs with this mesh: install one (Debian's `prometheus` package) "
            "or set RATLINE_PROMETHEUS, then `ratline up` again; or run your own with "
            "`ratline prometheus-config > prometheus.yml`"
        )
    click.echo(url)
    if browser:
        webbrowser.open(url)


COMMANDS = [prometheus_config_command, traces, dashboard]
