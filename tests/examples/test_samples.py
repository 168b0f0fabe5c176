"""Every task sample analyzes clean against its example mesh (as `ratline analyze MESH FILE`
would): no error, and no finding that something in it is not supported or unresolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratline.api.errors import Severity
from ratline.cli.config_commands import analyze_paths

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SAMPLES = [
    (mesh, sample)
    for mesh in ("bookinfo", "httpbin")
    for sample in sorted((EXAMPLES / f"{mesh}-samples").glob("*.yaml"))
    if sample.name != "bad-virtual-service.yaml"
]
EXTRA = {"httpbin": ["flaky.yaml", "locality.yaml"]}
"""Samples that other samples of the same mesh need (services they route to)."""


@pytest.mark.parametrize(("mesh", "sample"), SAMPLES, ids=[s.name for _, s in SAMPLES])
def test_sample_analyzes_clean(mesh: str, sample: Path) -> None:
    paths = [
        EXAMPLES / mesh,
        *(EXAMPLES / f"{mesh}-samples" / e for e in EXTRA.get(mesh, [])),
        sample,
    ]
    findings = [
        m for m in analyze_paths(paths) if m.resource is None or m.source.file == str(sample)
    ]
    problems = [
        str(m)
        for m in findings
        if m.severity is Severity.ERROR or m.code in ("RAT0001", "RAT0002", "IST0101")
    ]
    assert problems == []
