"""Commands for pods: `ratline kube-inject` (offline injection), `ratline iptables` (the
injected init container) and `ratline agent` (the injected sidecar container).

`ratline kube-inject -f deploy.yaml | kubectl apply -f -` injects as `istioctl
kube-inject` does, with the function the webhook uses: every Pod, and the pod template
of Deployments, ReplicaSets, StatefulSets, DaemonSets, Jobs and CronJobs; other documents
pass through unchanged. `ratline iptables` takes istio-iptables' flags and applies the
capture rules with `iptables-restore` (`--dry-run` prints them).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import yaml

DEFAULT_XDS = "istiod.istio-system.svc:15012"
DEFAULT_CA = "istiod.istio-system.svc:15013"
TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


def _inject_document(doc: Any, params: Any, shown: str) -> Any:
    from ratline.kube.injection import inject
    from ratline.kube.injection_annotations import InjectionError

    if not isinstance(doc, dict):
        return doc
    kind = str(doc.get("kind") or "")
    meta = doc.get("metadata") or {}
    namespace = str(meta.get("namespace") or "default")
    where = f"{shown}: {kind} {namespace}/{meta.get('name', '')}"
    path = ("",) if kind == "Pod" else TEMPLATE_PATHS.get(kind)
    if path is None:
        return doc
    parent: Any = doc
    if kind != "Pod":
        for key in path[:-1]:
            parent = parent.get(key) or {}
    pod = doc if kind == "Pod" else parent.get(path[-1])
    if not isinstance(pod, dict):
        raise click.ClickException(f"{where}: {'.'.join(path)}: missing")
    try:
        injected = inject(pod, params, namespace)
    except InjectionError as exc:
        prefix = "" if kind == "Pod" else ".".join(path) + "."
        raise click.ClickException(f"{where}: {prefix}{exc}") from None
    for warning in injected.warnings:
        click.echo(f"warning: {where}: {warning}", err=True)
    if kind == "Pod":
        return injected.pod
    parent[path[-1]] = injected.pod
    return doc


@click.command("kube-inject", short_help="Inject sidecars into Kubernetes YAML (offline).")
@click.option("-f", "--filename", "filename", required=True,
              type=click.Path(dir_okay=False, allow_dash=True),
              help="The YAML to inject (- for stdin).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Where to write it (default stdout).")
@click.option("--mesh-config", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="A MeshConfig file; its defaultConfig applies to the pods.")
@click.option("--image", default=None, help="The sidecar image (default the setting's).")
@click.option("--xds-address", default=DEFAULT_XDS, show_default=True)
@click.option("--ca-address", default=DEFAULT_CA, show_default=True)
def kube_inject(filename: str, output: str, mesh_config: Path | None, image: str | None,
                xds_address: str, ca_address: str) -> None:
    """Add the sidecar, as the injection webhook would, to every pod in FILE."""
    from ratline.api.loader import parse_mesh_config
    from ratline.kube.injection import InjectionParams
    from ratline.settings import Settings

    text = sys.stdin.read() if filename == "-" else Path(filename).read_text()
    shown = "<stdin>" if filename == "-" else filename
    default: dict[str, Any] = {}
    if mesh_config is not None:
        mesh, messages = parse_mesh_config(mesh_config.read_text(), str(mesh_config))
        if messages:
            raise click.ClickException("; ".join(str(m) for m in messages))
        default = mesh.default_config.model_dump(by_alias=True, exclude_defaults=True,
                                                 mode="json")
    params = InjectionParams(
        image=image or Settings.from_env().kube_proxy_image,
        xds_address=xds_address, ca_address=ca_address, mesh_proxy_config=default,
    )
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{shown}: not YAML: {exc}") from None
    out = [_inject_document(doc, params, shown) for doc in documents]
    rendered = yaml.safe_dump_all(out, sort_keys=False, default_flow_style=False)
    if output == "-":
        click.echo(rendered, nl=False)
    else:
        Path(output).write_text(rendered)


@click.command(short_help="Set up a pod's traffic capture (the init container).")
@click.option("-p", "outbound_port", type=int, default=15001, show_default=True,
              help="Envoy's outbound capture port (virtualOutbound).")
@click.option("-z", "inbound_port", type=int, default=15006, show_default=True,
              help="Envoy's inbound capture port (virtualInbound).")
@click.option("-u", "uid", type=int, default=1337, show_default=True,
              help="The proxy's UID (never captured).")
@click.option("-g", "gid", type=int, default=None, help="The proxy's GID (default: -u).")
@click.option("-m", "mode", default="REDIRECT", show_default=True,
              type=click.Choice(["REDIRECT"]), help="Interception mode.")
@click.option("-i", "include_ranges", default="*", show_default=True,
              help="Outbound IP ranges captured (CIDRs, * for all).")
@click.option("-x", "exclude_ranges", default="", help="Outbound IP ranges not captured.")
@click.option("-b", "include_inbound", default="*", show_default=True,
              help="Inbound ports captured (* for all).")
@click.option("-d", "exclude_inbound", default="", help="Inbound ports not captured.")
@click.option("-o", "exclude_outbound", default="", help="Outbound ports not captured.")
@click.option("-q", "include_outbound", default="", help="Outbound ports always captured.")
@click.option("--dry-run", is_flag=True, help="Print the rules instead of applying them.")
def iptables(outbound_port: int, inbound_port: int, uid: int, gid: int | None, mode: str,
             include_ranges: str, exclude_ranges: str, include_inbound: str,
             exclude_inbound: str, exclude_outbound: str, include_outbound: str,
             dry_run: bool) -> None:
    """Redirect the pod's TCP traffic to its Envoy (Istio's istio-iptables rules)."""
    from ratline.agent.capture import (
        DEFAULT_EXCLUDED_INBOUND,
        CaptureConfig,
        CaptureConfigError,
        nat_rules,
        parse_ports,
        parse_ranges,
    )
    from ratline.agent.iptables_apply import IptablesError, apply_rules

    try:
        parse_ranges(include_ranges, "-i")
        config = CaptureConfig(
            outbound_port=outbound_port, inbound_port=inbound_port, proxy_uid=uid,
            proxy_gid=uid if gid is None else gid, include_outbound_ranges=include_ranges,
            exclude_outbound_ranges=parse_ranges(exclude_ranges, "-x"),
            include_inbound_ports=include_inbound,
            exclude_inbound_ports=tuple(dict.fromkeys(
                [*DEFAULT_EXCLUDED_INBOUND, *parse_ports(exclude_inbound, "-d")])),
            exclude_outbound_ports=parse_ports(exclude_outbound, "-o"),
            include_outbound_ports=parse_ports(include_outbound, "-q"),
        )
        rules = nat_rules(config)
    except CaptureConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if dry_run:
        click.echo(rules, nl=False)
        return
    try:
        apply_rules(rules)
    except IptablesError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"traffic capture set up: outbound → {outbound_port}, inbound → {inbound_port}")


@click.command(short_help="Run a pod's sidecar: certificates, Envoy, health (the container).")
def agent() -> None:
    """The injected sidecar: bootstrap from the pod's identity, Envoy, SDS, health, drain."""
    from ratline.agent.pod_agent import main

    raise SystemExit(main())


COMMANDS = [kube_inject, iptables, agent]
