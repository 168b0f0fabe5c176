"""Where the tests find the tools `scripts/install-test-deps` built (kube-apiserver, etcd, …).

They live in `$RATLINE_TOOLS_DIR/bin` (default `~/.cache/ratline/tools/bin`), outside the
repository so every checkout on a machine shares one build. A missing tool fails the test
that needs it, with the command that builds it: nothing is skipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TOOLS_DIR = Path(os.environ.get("RATLINE_TOOLS_DIR", Path.home() / ".cache" / "ratline" / "tools"))


def tool(name: str) -> str:
    """Path of a built tool (or one on PATH); raises with the build command when missing."""
    built = TOOLS_DIR / "bin" / name
    if built.exists():
        return str(built)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(
        f"{name} is not built: run scripts/install-test-deps (it builds into {TOOLS_DIR})"
    )
