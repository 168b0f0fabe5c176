"""Entry point of the control plane process: `python -m ratline.controlplane --mesh-dir DIR`.

Loads the mesh directory, serves xDS and the admin API, writes a ready file with its
addresses once both listen, and stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import signal
import sys
from pathlib import Path

from ratline.config.persist import write_atomic
from ratline.controlplane.admin import AdminApi
from ratline.controlplane.app import GC_THRESHOLDS, ControlPlane
from ratline.controlplane.ca_http import CertificateApi
from ratline.controlplane.security import ControlPlaneSecurity, authorize_node
from ratline.controlplane.telemetry import ControlPlaneTelemetry
from ratline.settings import Settings


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ratline.controlplane")
    parser.add_argument("--mesh-dir", required=True, type=Path)
    parser.add_argument("--xds-port", type=int, default=None)
    parser.add_argument("--admin-port", type=int, default=None)
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with an error if any file of the mesh directory is refused at start",
    )
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    cp = ControlPlane(args.mesh_dir, settings)
    cp.mtls = True
    errors = cp.load()
    if errors and args.strict:
        for err in errors:
            print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        security = ControlPlaneSecurity.setup(
            cp.mesh_dir, settings, cp.store.mesh_config.trust_domain
        )
    except (OSError, RuntimeError, ValueError) as exc:
        print(f"error: the mesh CA cannot start: {exc}", file=sys.stderr)
        return 2
    telemetry = ControlPlaneTelemetry.attach(cp)
    admin = AdminApi(cp, token=security.admin_token, telemetry=telemetry)
    credentials = security.xds_credentials() if settings.xds_tls else None
    if credentials is not None:
        trust_domain = security.certificates.trust_domain

        def service_account_of(node_id: str) -> str | None:
            snapshot = cp.snapshot
            instance = snapshot.instance(node_id) if snapshot is not None else None
            return instance.service_account if instance is not None else None

        cp.xds.authorize = lambda node, peers: authorize_node(
            node, peers, trust_domain, service_account_of
        )
    xds_wanted = args.xds_port if args.xds_port is not None else settings.xds_port
    xds_port = await cp.start(xds_wanted, credentials)
    ca_api = CertificateApi(
        security.certificates, security.server_chain_pem, security.server_key_pem
    )
    ca_port = await ca_api.start(settings.bind_address, settings.ca_port)
    admin_port_wanted = args.admin_port if args.admin_port is not None else settings.admin_port
    admin_port = await admin.start(settings.bind_address, admin_port_wanted)
    host = settings.bind_address
    logging.getLogger("ratline.controlplane").info(
        "serving xDS on %s:%d, admin API on %s:%d", host, xds_port, host, admin_port
    )
    if args.ready_file is not None:
        info = {
            "pid": os.getpid(),
            "xds": f"{host}:{xds_port}",
            "admin": f"{host}:{admin_port}",
            "ca": f"{host}:{ca_port}",
            "xds_tls": credentials is not None,
            "errors": [str(e) for e in errors],
        }
        write_atomic(args.ready_file, json.dumps(info).encode())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await admin.stop()
    await ca_api.stop()
    await cp.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.mesh_dir.is_dir():
        print(f"error: {args.mesh_dir}: not a directory", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, settings))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
