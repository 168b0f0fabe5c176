"""The `ratline` command: a click group whose subcommands are imported on first use.

Commands live in sibling modules; this group maps each name to its module so that
`ratline apply` does not pay for importing the runner or the schemas it does not use.
"""

from __future__ import annotations

import importlib

import click

from ratline import __version__

_COMMAND_MODULES = {
    "up": "lifecycle",
    "down": "lifecycle",
    "apply": "config_commands",
    "delete": "config_commands",
    "analyze": "config_commands",
    "proxy-status": "inspect_commands",
    "proxy-config": "inspect_commands",
    "status": "inspect_commands",
    "version": "inspect_commands",
    "controlplane": "kube_commands",
    "manifest": "kube_commands",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = _COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(f"ratline.cli.{module_name}")
        return next((c for c in module.COMMANDS if c.name == cmd_name), None)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ratline")
def cli() -> None:
    """Ratline: a service mesh with real Envoy sidecars that speaks Istio's YAML."""


def main() -> None:
    cli()
