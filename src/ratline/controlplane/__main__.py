"""Entry point of the control plane process.

`python -m ratline.controlplane --mesh-dir DIR` serves a mesh directory (local mode);
`--kubeconfig FILE` (or `--in-cluster` in a pod) serves a Kubernetes cluster (see
`ratline.controlplane.kubernetes`). Either way it serves xDS, the CSR endpoint and the
admin API, writes a ready file with its addresses once they listen, and stops cleanly on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path

from ratline.config.store import MeshDirStore
from ratline.controlplane import log_format
from ratline.controlplane.app import GC_THRESHOLDS, ControlPlane
from ratline.controlplane.security import ControlPlaneSecurity
from ratline.controlplane.serving import start_serving, until_signalled, write_ready_file
from ratline.registry.registry import ReportedInstances
from ratline.settings import Settings, state_dir


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ratline.controlplane")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mesh-dir", type=Path, help="serve this mesh directory (local mode)")
    source.add_argument("--kubeconfig", type=Path, help="serve the cluster of this kubeconfig")
    source.add_argument(
        "--in-cluster", action="store_true", help="serve the cluster this pod runs in"
    )
    parser.add_argument("--context", default=None, help="the kubeconfig context to use")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path("."),
        help="with Kubernetes: where DIR/.ratline/ keeps the admin token and run info",
    )
    parser.add_argument("--xds-port", type=int, default=None)
    parser.add_argument("--admin-port", type=int, default=None)
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument(
        "--prometheus-url",
        default="",
        help="the Prometheus the dashboard reads (the runner passes its add-on's)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with an error if any file of the mesh directory is refused at start",
    )
    return parser.parse_args(argv)


async def _serve_mesh_dir(args: argparse.Namespace, settings: Settings) -> int:
    mesh_dir = args.mesh_dir.resolve()
    store = MeshDirStore(mesh_dir, state_dir(mesh_dir))
    errors = store.load()
    cp = ControlPlane(store, ReportedInstances(), settings, mesh_dir=mesh_dir)
    cp.mtls = True
    cp.load()
    if errors and args.strict:
        for err in errors:
            print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        security = ControlPlaneSecurity.setup(mesh_dir, settings, store.mesh_config.trust_domain)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: the mesh CA cannot start: {exc}", file=sys.stderr)
        return 2
    serving = await start_serving(
        cp, security, settings, args.xds_port, args.admin_port, prometheus_url=args.prometheus_url
    )
    write_ready_file(args.ready_file, {**serving.info, "errors": [str(e) for e in errors]})
    await until_signalled()
    await serving.stop(cp)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        settings = Settings.from_env()
        log_format.configure(settings.log_level, settings.log_format)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.mesh_dir is not None and not args.mesh_dir.is_dir():
        print(f"error: {args.mesh_dir}: not a directory", file=sys.stderr)
        return 2
    try:
        if args.mesh_dir is not None:
            return asyncio.run(_serve_mesh_dir(args, settings))
        from ratline.controlplane.kubernetes import serve_kubernetes

        return asyncio.run(serve_kubernetes(args, settings))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
