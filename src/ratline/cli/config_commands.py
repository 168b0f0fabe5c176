"""Config commands: `apply` and `delete` (through the admin API) and `analyze` (offline).

`apply`/`delete` print kubectl's lines (`virtualservice.networking.istio.io/reviews
configured`); `analyze` validates files and directories without a running mesh and
prints istioctl-style findings.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ratline.cli.admin_client import AdminApiError, AdminClient
from ratline.cli.meshref import mesh_option
from ratline.cli.output import echo_data, format_message, is_error, output_option

if TYPE_CHECKING:
    from ratline.api.envelope import Resource, ResourceKey
    from ratline.api.errors import ConfigMessage

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")
STDIN_NAME = "<stdin>"

KeyTuple = tuple[str, str, str]
"""(kind, namespace, name)."""


# --- pure helpers -----------------------------------------------------------------------


def resource_type_name(ref: str, answer: Mapping[str, Any]) -> str:
    """kubectl's type name of a resource in an API answer (`virtualservice.networking.istio.io`)."""
    types = answer.get("types") or {}
    return str(types.get(ref) or parse_resource_ref(ref)[0].lower())


def parse_resource_ref(ref: str) -> KeyTuple:
    """`VirtualService default/reviews` (the API's form) → (kind, namespace, name)."""
    kind, _, rest = ref.partition(" ")
    namespace, slash, name = rest.rpartition("/")
    if not slash:
        return kind, "", rest
    return kind, namespace, name


def apply_lines(answer: Mapping[str, Any]) -> list[str]:
    """kubectl-style lines for an apply answer: `TYPE/NAME created|configured|unchanged`."""
    lines = []
    for verb in ("created", "configured", "unchanged"):
        for ref in answer.get(verb) or ():
            name = parse_resource_ref(ref)[2]
            lines.append(f"{resource_type_name(ref, answer)}/{name} {verb}")
    return lines


def delete_lines(answer: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """kubectl-style (deleted lines, not-found lines) for a delete answer."""
    deleted = []
    for ref in answer.get("deleted") or ():
        _kind, _, name = parse_resource_ref(ref)
        deleted.append(f'{resource_type_name(ref, answer)} "{name}" deleted')
    missing = []
    for ref in answer.get("not_found") or ():
        _kind, namespace, name = parse_resource_ref(ref)
        where = f" in namespace {namespace}" if namespace else ""
        missing.append(f'{resource_type_name(ref, answer)} "{name}" not found{where}')
    return deleted, missing


def read_inputs(filenames: Sequence[str]) -> list[tuple[str, str]]:
    """(name, text) of every input: files, `-` for stdin, directories' config files."""
    inputs: list[tuple[str, str]] = []
    for filename in filenames:
        if filename == "-":
            inputs.append((STDIN_NAME, sys.stdin.read()))
            continue
        path = Path(filename)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in CONFIG_SUFFIXES)
            if not files:
                raise click.ClickException(f"{filename}: no {'/'.join(CONFIG_SUFFIXES)} files")
            inputs.extend((str(p), _read(p)) for p in files)
        else:
            inputs.append((filename, _read(path)))
    return inputs


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise click.ClickException(f"{path}: no such file or directory") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{path}: cannot read: {exc}") from None


def _warn(answer: Mapping[str, Any]) -> None:
    for warning in answer.get("warnings") or ():
        click.echo(format_message(warning), err=True)


# --- apply / delete ---------------------------------------------------------------------

_filename_option = click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="A YAML file, a directory of them, or - for stdin. Repeatable.",
)


def _send_each(
    filenames: Sequence[str], mesh_dir: Path, path: str, show: Callable[[Mapping[str, Any]], bool]
) -> None:
    """POST every input to `path`; `show` prints an answer and says whether it failed.

    One refused file does not stop the others; the command exits 1 if any failed.
    """
    inputs = read_inputs(filenames)
    client = AdminClient.for_mesh(mesh_dir)
    failed = False
    for name, text in inputs:
        try:
            answer = client.post(path, text.encode("utf-8"), {"X-Ratline-Filename": name})
        except AdminApiError as exc:
            exc.show()
            failed = True
            continue
        failed = show(answer) or failed
    if failed:
        sys.exit(1)


@click.command()
@_filename_option
@mesh_option
def apply(filenames: tuple[str, ...], mesh_dir: Path) -> None:
    """Apply config to the running mesh (each file all or nothing)."""

    def show(answer: Mapping[str, Any]) -> bool:
        for line in apply_lines(answer):
            click.echo(line)
        _warn(answer)
        return False

    _send_each(filenames, mesh_dir, "/v1/apply", show)


@click.command()
@_filename_option
@click.option("--ignore-not-found", is_flag=True, help="Treat absent resources as deleted.")
@mesh_option
def delete(filenames: tuple[str, ...], ignore_not_found: bool, mesh_dir: Path) -> None:
    """Delete config applied through the API.

    Config from the mesh directory's files is changed by editing the files.
    """

    def show(answer: Mapping[str, Any]) -> bool:
        deleted, missing = delete_lines(answer)
        for line in deleted:
            click.echo(line)
        if ignore_not_found:
            return False
        for line in missing:
            click.echo(f"Error: {line}", err=True)
        return bool(missing)

    _send_each(filenames, mesh_dir, "/v1/delete", show)


# --- analyze ----------------------------------------------------------------------------


def _load_paths(
    paths: Sequence[Path],
) -> tuple[dict[ResourceKey, Resource[Any]], list[ConfigMessage]]:
    """Every path's resources (later ones override earlier ones by key) and messages."""
    from ratline import api

    by_key: dict[ResourceKey, Resource[Any]] = {}
    messages: list[ConfigMessage] = []
    for path in paths:
        if path.is_dir():
            result = api.load_directory(path)
        else:
            result = api.load_text(_read(path), str(path))
        by_key.update((r.key, r) for r in result.resources)
        messages.extend(result.messages)
    return by_key, messages


def analyze_paths(paths: Sequence[Path]) -> list[ConfigMessage]:
    """Load every path (files and directories) and run the analyzers on them together.

    Later paths override earlier ones resource by resource, as if applied on top (so
    `analyze MESH_DIR change.yaml` checks the change against the mesh). The mesh config
    (mesh.yaml) comes from the first directory given, else the defaults.
    """
    from ratline import api
    from ratline.api.schemas.meshconfig import MeshConfig

    by_key, messages = _load_paths(paths)
    mesh_dir = next((p for p in paths if p.is_dir()), None)
    if mesh_dir is not None:
        mesh_config, mesh_messages = api.load_mesh_config(mesh_dir)
        messages.extend(mesh_messages)
    else:
        mesh_config = MeshConfig()
    messages.extend(api.analyze(list(by_key.values()), mesh_config, mesh_dir=mesh_dir))
    from ratline.model.gateway_api import convert

    messages.extend(convert(by_key.values(), {}).findings)  # Gateway API not translated
    return _unique(messages)


def _unique(messages: Iterable[ConfigMessage]) -> list[ConfigMessage]:
    seen: set[str] = set()
    unique = []
    for message in messages:
        text = f"{message.severity.value} {message.code} {message}"
        if text not in seen:
            seen.add(text)
            unique.append(message)
    return unique


def print_findings(messages: Sequence[Mapping[str, Any]], what: str, output: str) -> None:
    """Print findings (ConfigMessage JSON) and exit 1 if any is an error."""
    if output != "text":
        echo_data({"messages": list(messages)}, output)
    elif not messages:
        click.echo(f"\N{HEAVY CHECK MARK} No validation issues found when analyzing {what}.")
    else:
        for message in messages:
            click.echo(format_message(message))
    if any(is_error(m) for m in messages):
        sys.exit(1)


def analyze_cluster_paths(
    paths: Sequence[Path], kubeconfig: Path | None, context: str | None
) -> list[ConfigMessage]:
    """`analyze -k`: the live cluster, with PATHS' resources applied on top."""
    import asyncio

    from ratline.kube.analysis import analyze_live_cluster
    from ratline.kube.connection import KubeApiError, KubeConnection
    from ratline.settings import Settings

    overlay, messages = _load_paths(paths)

    async def run() -> list[ConfigMessage]:
        try:
            connection = await KubeConnection.from_kubeconfig(kubeconfig, context)
        except Exception as exc:  # the client's config errors have no common base
            raise click.ClickException(f"cannot load the Kubernetes credentials: {exc}") from None
        try:
            namespace = Settings.from_env().kube_namespace
            return await analyze_live_cluster(connection, namespace, list(overlay.values()))
        except (KubeApiError, TimeoutError) as exc:
            raise click.ClickException(f"cannot read the cluster: {exc!r}") from None
        finally:
            await connection.close()

    return _unique([*messages, *asyncio.run(run())])


@click.command(short_help="Validate config offline, a running mesh's or a cluster's.")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("-k", "--use-kube", is_flag=True,
              help="Analyze the live Kubernetes cluster (PATHS are applied on top of it), "
              "as istioctl analyze -k.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="KUBECONFIG", help="With -k: the kubeconfig (default $KUBECONFIG).")
@click.option("--context", default=None, help="With -k: the kubeconfig context.")
@output_option("text")
@mesh_option
def analyze(
    paths: tuple[Path, ...],
    use_kube: bool,
    kubeconfig: Path | None,
    context: str | None,
    output: str,
    mesh_dir: Path,
) -> None:
    """Validate config: files and directories offline, the running mesh without PATHS, or
    the live Kubernetes cluster with -k.

    Exits 1 if any error is found.
    """
    if use_kube:
        found = [m.to_json() for m in analyze_cluster_paths(paths, kubeconfig, context)]
        print_findings(found, "the Kubernetes cluster", output)
    elif paths:
        found = [m.to_json() for m in analyze_paths(paths)]
        print_findings(found, ", ".join(str(p) for p in paths), output)
    else:
        answer = AdminClient.for_mesh(mesh_dir).get("/v1/analyze")
        print_findings(
            list(answer.get("messages") or ()), f"the mesh in {mesh_dir.resolve()}", output
        )


COMMANDS = [apply, delete, analyze]
