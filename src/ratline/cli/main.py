"""The `ratline` command: a click group whose subcommands live in sibling modules."""

from __future__ import annotations

import click

from ratline import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ratline")
def cli() -> None:
    """Ratline: a service mesh with real Envoy sidecars that speaks Istio's YAML."""


def _register() -> None:
    from ratline.cli import config_commands, inspect_commands, lifecycle

    for module in (lifecycle, config_commands, inspect_commands):
        for command in module.COMMANDS:
            cli.add_command(command)


def main() -> None:
    _register()
    cli()
