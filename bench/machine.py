"""The machine and software a benchmark ran on, for the report's header."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _command_first_line(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def describe(envoy: str, fortio: str | None) -> dict[str, Any]:
    """Cores, memory, OS, and the versions of everything measured."""
    envoy_version = _command_first_line([envoy, "--version"])
    if "version:" in envoy_version:
        envoy_version = envoy_version.split("version:", 1)[1].strip()
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_mib": _memory_mib(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "software": {
            "ratline": _version("ratline"),
            "envoy": envoy_version,
            "grpcio": _version("grpcio"),
            "protobuf": _version("protobuf"),
            "xds-protos": _version("xds-protos"),
            "fortio": _command_first_line([fortio, "version"]) if fortio else "not used",
        },
    }
