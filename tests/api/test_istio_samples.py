"""Istio's own sample files (from istio/istio `samples/`, copied in `fixtures/`) load and
analyze as Istio accepts them: lower-case protocol names, Kubernetes workload kinds,
EnvoyFilter and Telemetry. Only references a single file cannot resolve (IST0101) may
remain as errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratline.api import analyze, load_text

SAMPLES = sorted((Path(__file__).parent / "fixtures" / "istio-samples").glob("*.yaml"))


@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
def test_istio_sample_is_accepted(sample: Path) -> None:
    result = load_text(sample.read_text(), sample.name)
    assert result.ok, [str(m) for m in result.errors]
    assert result.resources
    errors = [m for m in analyze(result.resources) if m.severity.value == "error"]
    assert all(m.code == "IST0101" for m in errors), [str(m) for m in errors]


def test_the_samples_were_refused_for_the_reasons_now_accepted() -> None:
    names = {p.name for p in SAMPLES}
    assert {"github.yaml", "expose-istiod.yaml", "local-ext-authz.yaml"} <= names
    kinds = {r.kind for p in SAMPLES for r in load_text(p.read_text(), p.name).resources}
    assert {"Deployment", "EnvoyFilter", "Telemetry", "ServiceAccount"} <= kinds
