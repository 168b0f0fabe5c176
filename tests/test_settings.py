"""Settings defaults that depend on the machine: the xDS worker count."""

from __future__ import annotations

import pytest

from ratline import settings
from ratline.settings import MIN_CORES_FOR_XDS_WORKERS, Settings


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 1), (3, 1), (4, 4), (16, 16)])
def test_xds_workers_default_to_the_cores_from_four(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int
) -> None:
    monkeypatch.setattr(settings, "_core_count", lambda: cores)
    assert MIN_CORES_FOR_XDS_WORKERS == 4
    assert Settings().xds_workers == workers
    assert Settings.from_env({"RATLINE_XDS_WORKERS": "2"}).xds_workers == 2
