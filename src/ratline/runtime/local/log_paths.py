"""Where the local runtime keeps each process's logs (`DIR/.ratline/logs/`).

The one place these names are made, for the runner and for commands that read them.
"""

from __future__ import annotations

from pathlib import Path

from ratline.settings import state_dir


def logs_dir(mesh_dir: Path) -> Path:
    return state_dir(mesh_dir) / "logs"


def app_log_path(logs: Path, instance: str) -> Path:
    """The app's stdout and stderr."""
    return logs / f"{instance}.log"


def sidecar_log_path(logs: Path, instance: str) -> Path:
    """The sidecar's (or gateway's) own Envoy log (stderr)."""
    return logs / f"{instance}.envoy.log"


def access_log_path(logs: Path, instance: str) -> Path:
    """The proxy's access log: Envoy's stdout (`accessLogFile: /dev/stdout`)."""
    return logs / f"{instance}.access.log"
