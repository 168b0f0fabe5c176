"""`python -m ratline.runtime.local DIR`: the runner alone (what `ratline up -d` detaches)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ratline.runtime.local.leftovers import LeftoverProcesses
from ratline.runtime.local.runfile import MeshAlreadyRunning
from ratline.runtime.local.runner import configure_logging, run_mesh
from ratline.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ratline.runtime.local")
    parser.add_argument("mesh_dir", type=Path)
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.mesh_dir.is_dir():
        print(f"error: {args.mesh_dir}: not a directory", file=sys.stderr)
        return 2
    try:
        return run_mesh(args.mesh_dir, settings)
    except (MeshAlreadyRunning, LeftoverProcesses) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
