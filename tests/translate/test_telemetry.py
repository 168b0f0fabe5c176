"""The Telemetry API and MeshConfig resolved per proxy (levels, modes, overrides)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ratline.api.loader import load_text
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.translate.common import Findings
from ratline.translate.telemetry import CLIENT, SERVER, cel_to_format, resolve
from tests.translate import mesh


def _with(telemetry_yaml: str, mesh_config: Any = None) -> Any:
    loaded = load_text(telemetry_yaml, "telemetry.yaml")
    loaded.raise_for_errors()
    snapshot = mesh.snapshot(mesh_config=mesh_config)
    return replace(snapshot, extra={"Telemetry": tuple(loaded.resources)})


def _instance(snapshot: Any, name: str) -> Any:
    return snapshot.instances[mesh.node(name)]


LEVELS = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
  tracing: [{randomSamplingPercentage: 10}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: no-logs, namespace: default}
spec:
  accessLogging: [{disabled: true}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ratings, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  accessLogging:
  - match: {mode: SERVER}
    providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
  tracing:
  - match: {mode: CLIENT}
    disableSpanReporting: true
  metrics:
  - overrides:
    - match: {metric: REQUEST_COUNT, mode: CLIENT}
      disabled: true
    - tagOverrides:
        request_host: {value: "request.host"}
        source_principal: {operation: REMOVE}
"""


def test_workload_over_namespace_over_mesh() -> None:
    snapshot = _with(LEVELS)
    findings = Findings()
    echo = resolve(snapshot, _instance(snapshot, "echo-v1-0"), findings)
    assert [c.path for c in echo.access_logs[CLIENT]] == ["/dev/stdout"]
    assert echo.tracing[SERVER] is not None and echo.tracing[SERVER].sampling == 10
    details = resolve(snapshot, _instance(snapshot, "details-v1-0"), findings)
    assert details.access_logs[CLIENT] == () and details.access_logs[SERVER] == ()
    ratings = resolve(snapshot, _instance(snapshot, "ratings-v1-0"), findings)
    assert ratings.access_logs[CLIENT] == ()
    assert [c.filter_expression for c in ratings.access_logs[SERVER]] == ["response.code >= 400"]
    assert ratings.tracing[CLIENT] is None and ratings.tracing[SERVER] is not None
    assert not ratings.metric_on("istio_requests_total", "source")
    assert ratings.metric_on("istio_requests_total", "destination")
    overrides = ratings.tag_overrides[("istio_request_bytes", "destination")]
    assert ("request_host", "%REQ(:authority)%") in overrides
    assert ("source_principal", None) in overrides
    assert not findings.messages


def test_mesh_config_alone_decides_without_telemetry() -> None:
    mesh_config = MeshConfig.model_validate(
        {"accessLogFile": "/dev/stdout", "accessLogEncoding": "JSON", "enableTracing": False}
    )
    snapshot = _with("", mesh_config)
    resolved = resolve(snapshot, _instance(snapshot, "details-v1-0"), Findings())
    assert [c.encoding for c in resolved.access_logs[SERVER]] == ["JSON"]
    assert resolved.tracing[CLIENT] is None
    default = resolve(_with(""), _instance(snapshot, "details-v1-0"), Findings())
    assert default.access_logs[SERVER] == ()
    assert default.tracing[SERVER] is not None and default.tracing[SERVER].sampling == 1.0


def test_unknown_providers_and_expressions_are_reported() -> None:
    snapshot = _with("""
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: odd, namespace: default}
spec:
  tracing: [{providers: [{name: nowhere}]}]
  metrics:
  - overrides:
    - tagOverrides:
        x: {value: "size(request.headers)"}
""")
    findings = Findings()
    resolve(snapshot, _instance(snapshot, "details-v1-0"), findings)
    text = "\n".join(str(m) for m in findings.messages)
    assert "spec.tracing[0].providers[0]" in text and "nowhere" in text
    assert "tagOverrides.x.value" in text


def test_cel_values_that_map_to_envoy_formats() -> None:
    assert cel_to_format("'literal'") == "literal"
    assert cel_to_format("request.headers['x-user']") == "%REQ(x-user)%"
    assert cel_to_format("request.method") == "%REQ(:method)%"
    assert cel_to_format("request.size > 10") is None
