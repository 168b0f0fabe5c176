"""`ratline install` and `ratline manifest generate`: Ratline into a cluster, as istioctl's.

Both render the install in Python (`ratline.install.render`) from the chart's defaults
and the values given (`-f values.yaml`, `--set key.path=value`, as Helm's), so no `helm`
is needed; `helm template charts/ratline` with the same values renders the same objects.
`manifest generate` prints them; `install` applies them to the cluster of the
kubeconfig and waits until the CRDs are served (and with `--wait`, the Deployments
available). Bad values fail before anything is applied, naming the key.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import yaml

DEFAULT_NAMESPACE = "istio-system"


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (the ConfigMap's `mesh`) as `|` blocks, as a chart writes them."""


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_BlockDumper.add_representer(str, _string)


def values_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`-f/--values FILE` (repeatable), `--set K=V` (repeatable), `-n/--namespace`."""

    @click.option(
        "-f",
        "--values",
        "values_files",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="A values file, as Helm's (repeatable; later ones win).",
    )
    @click.option(
        "--set",
        "set_values",
        multiple=True,
        metavar="KEY.PATH=VALUE",
        help="One value, as Helm's --set (repeatable; wins over files), "
        "e.g. controlplane.meshConfig.accessLogFile=/dev/stdout.",
    )
    @click.option(
        "-n",
        "--namespace",
        default=DEFAULT_NAMESPACE,
        show_default=True,
        help="The control plane's namespace (Helm's release namespace).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **kwargs)

    return wrapper


def rendered(
    values_files: tuple[Path, ...], set_values: tuple[str, ...], namespace: str
) -> list[dict[str, Any]]:
    """The install's objects for these values (click's error naming the bad value)."""
    from ratline.install.render import render
    from ratline.install.values import ValuesError, load_values_file, parse_set, resolve

    try:
        overrides = [load_values_file(p.read_text(), str(p)) for p in values_files]
        overrides += [parse_set(s) for s in set_values]
        return render(namespace, resolve(overrides))
    except ValuesError as exc:
        raise click.ClickException(str(exc)) from None


@click.command(short_help="Print every object of an install (as istioctl manifest generate).")
@values_options
def generate(values_files: tuple[Path, ...], set_values: tuple[str, ...], namespace: str) -> None:
    """Print every object `ratline install` would apply, for these values
    (the same objects as `helm template charts/ratline` with them)."""
    objects = rendered(values_files, set_values, namespace)
    text = yaml.dump_all(objects, Dumper=_BlockDumper, sort_keys=False, default_flow_style=False)
    click.echo(text, nl=False)


@click.command(short_help="Install Ratline into the cluster of a kubeconfig.")
@values_options
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="KUBECONFIG",
    help="The cluster's kubeconfig (default $KUBECONFIG or ~/.kube/config).",
)
@click.option("--context", default=None, help="The kubeconfig context.")
@click.option(
    "--wait/--no-wait",
    default=False,
    help="Also wait for the Deployments (control plane, gateway) to be available.",
)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds per wait.")
def install(
    values_files: tuple[Path, ...],
    set_values: tuple[str, ...],
    namespace: str,
    kubeconfig: Path | None,
    context: str | None,
    wait: bool,
    timeout: float,
) -> None:
    """Apply the install (server-side apply; run it again with other values to upgrade):
    CRDs, the webhooks, RBAC, the control plane and the ingress gateway."""
    objects = rendered(values_files, set_values, namespace)
    asyncio.run(_install(objects, namespace, kubeconfig, context, wait, timeout))


async def _install(
    objects: list[dict[str, Any]],
    namespace: str,
    kubeconfig: Path | None,
    context: str | None,
    wait: bool,
    timeout: float,
) -> None:
    from ratline.install.apply import InstallError, install_objects, wait_available
    from ratline.kube.connection import KubeApiError, KubeConnection

    try:
        connection = await KubeConnection.from_kubeconfig(kubeconfig, context)
    except Exception as exc:  # the client's config errors have no common base
        raise click.ClickException(f"cannot load the Kubernetes credentials: {exc}") from None
    try:
        click.echo(f"installing into {connection.description}, namespace {namespace}")
        await install_objects(connection, namespace, objects, timeout, click.echo)
        if wait:
            await wait_available(connection, objects, timeout, click.echo)
    except (InstallError, KubeApiError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        await connection.close()
    click.echo("installed")


COMMANDS = [install]
