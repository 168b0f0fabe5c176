"""Kubernetes commands: `ratline controlplane` (serve a cluster) and `ratline manifest`.

`ratline controlplane --kubeconfig FILE` runs the control plane in the foreground against
a cluster; `ratline manifest crds | kubectl apply -f -` installs Ratline's CRDs, and
`ratline manifest rbac` the control plane's ServiceAccount and RBAC, `ratline manifest
injector` the sidecar injector's MutatingWebhookConfiguration;
`ratline manifest generate` every object of the install (`ratline.cli.install_commands`).
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from ratline.cli.install_commands import generate


@click.command(short_help="Serve a Kubernetes cluster's mesh (foreground).")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KUBECONFIG",
    help="The cluster's kubeconfig (default $KUBECONFIG, or in-cluster in a pod).",
)
@click.option("--context", default=None, help="The kubeconfig context.")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Where STATE_DIR/.ratline/ keeps the admin token and run info "
    "(other commands then take --mesh STATE_DIR).",
)
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), default=None)
def controlplane(
    kubeconfig: Path | None, context: str | None, state_dir: Path, ready_file: Path | None
) -> None:
    """Run the control plane against a Kubernetes cluster (foreground; Ctrl-C stops it)."""
    from ratline.controlplane.__main__ import main

    args = ["--kubeconfig", str(kubeconfig)] if kubeconfig else ["--in-cluster"]
    if context:
        args += ["--context", context]
    args += ["--state-dir", str(state_dir)]
    if ready_file:
        args += ["--ready-file", str(ready_file)]
    raise SystemExit(main(args))


def _print_documents(documents: list[dict[str, object]]) -> None:
    click.echo(yaml.safe_dump_all(documents, sort_keys=False, default_flow_style=False), nl=False)


@click.group(short_help="Print Kubernetes manifests: crds, rbac, injector, generate.")
def manifest() -> None:
    """Print Kubernetes manifests (for `kubectl apply -f -`)."""


@manifest.command()
@click.option("--gateway-api", is_flag=True,
              help="Also the Gateway API kinds' (for a cluster without the project's own).")
def crds(gateway_api: bool) -> None:
    """CustomResourceDefinitions of every Istio kind Ratline reads, and its own kinds."""
    from ratline.kube.crds import all_crds, gateway_api_crds

    _print_documents([*all_crds(), *(gateway_api_crds() if gateway_api else [])])


@manifest.command()
@click.option("--namespace", default=None, help="The control plane's (default: the setting's).")
def rbac(namespace: str | None) -> None:
    """The control plane's ServiceAccount, ClusterRole, Role and bindings."""
    from ratline.kube.rbac import rbac_manifests
    from ratline.settings import Settings

    _print_documents(rbac_manifests(namespace or Settings.from_env().kube_namespace))


@manifest.command()
@click.option("--namespace", default=None, help="The control plane's (default: the setting's).")
@click.option("--ca-bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              required=True, help="The mesh CA's root certificate (PEM), the caBundle.")
@click.option("--service", default="istiod", show_default=True,
              help="The control plane's Service (the webhook is its port 443, path /inject).")
@click.option("--url", default="", help="Reach the webhook by URL instead of a Service.")
def injector(namespace: str | None, ca_bundle: Path, service: str, url: str) -> None:
    """The MutatingWebhookConfiguration `ratline-sidecar-injector` (the leader keeps it)."""
    from ratline.kube.injector_config import injector_configuration
    from ratline.settings import Settings

    body = injector_configuration(
        namespace or Settings.from_env().kube_namespace, ca_bundle.read_text(),
        url=url, service="" if url else service,
    )
    _print_documents([body])

manifest.add_command(generate)

COMMANDS = [controlplane, manifest]
