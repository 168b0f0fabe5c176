"""Gateway API kinds: not translated yet, so accepted with a finding saying so (never
silently), and its Gateway refused naming Istio's Gateway as what to use."""

from __future__ import annotations

import pytest

from ratline.api.analyze import analyze
from ratline.api.kinds import GATEWAY_API_KINDS, NOT_SUPPORTED_KIND
from ratline.api.loader import load_text


@pytest.mark.parametrize("kind", GATEWAY_API_KINDS)
def test_gateway_api_kinds_are_accepted_and_reported_as_not_translated(kind: str) -> None:
    text = f"apiVersion: gateway.networking.k8s.io/v1\nkind: {kind}\nmetadata: {{name: a}}\n"
    loaded = load_text(text + "spec: {rules: []}\n", "routes.yaml")
    assert loaded.messages == []
    findings = [m for m in analyze(loaded.resources) if m.code == NOT_SUPPORTED_KIND]
    assert len(findings) == 1
    assert f"{kind} (Gateway API) is not yet supported by Ratline" in findings[0].message
    assert findings[0].source.file == "routes.yaml"


def test_the_gateway_api_gateway_is_refused_pointing_at_istios() -> None:
    text = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
        "spec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}\n"
    )
    loaded = load_text(text, "gw.yaml")
    (message,) = loaded.messages
    assert message.field == "apiVersion" and message.source.file == "gw.yaml"
    assert "Gateway API's Gateway (gateway.networking.k8s.io/v1) is not yet supported" in (
        message.message
    )
    assert "networking.istio.io/v1 Gateway" in message.message
