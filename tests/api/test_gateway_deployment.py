"""Istio's gateway Deployment (`inject.istio.io/templates: gateway`): read, checked, and
not reported as a Deployment the local runtime does not run."""

from __future__ import annotations

from typing import Any

import pytest

from ratline.api import analyze, load_text
from ratline.api.errors import Severity
from ratline.api.gateway_deployment import (
    GatewayDeploymentError,
    is_gateway_deployment,
    parse_gateway_deployment,
)

EGRESS_GATEWAY = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: istio-egressgateway, namespace: istio-system}
spec:
  replicas: 2
  selector: {matchLabels: {istio: egressgateway}}
  template:
    metadata:
      annotations: {inject.istio.io/templates: gateway}
      labels: {istio: egressgateway, app: istio-egressgateway}
    spec:
      serviceAccountName: istio-egressgateway-service-account
      containers: [{name: istio-proxy, image: auto}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress}
spec:
  selector: {istio: egressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ["*"]}]
"""


def _doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "kind": "Deployment",
        "metadata": {"name": "gw", "namespace": "edge"},
        "spec": {
            "template": {
                "metadata": {
                    "annotations": {"inject.istio.io/templates": "gateway"},
                    "labels": {"istio": "edge"},
                }
            }
        },
    }
    doc["spec"].update(changes)
    return doc


def test_reads_labels_namespace_account_and_replicas() -> None:
    result = load_text(EGRESS_GATEWAY, "egress.yaml")
    assert result.ok
    raw = result.resources[0].raw
    assert is_gateway_deployment(raw)
    gateway = parse_gateway_deployment(raw)
    assert gateway.namespace == "istio-system" and gateway.name == "istio-egressgateway"
    assert gateway.label_map == {"istio": "egressgateway", "app": "istio-egressgateway"}
    assert gateway.service_account == "istio-egressgateway-service-account"
    assert gateway.replicas == 2


def test_other_deployments_are_not_gateways() -> None:
    doc = _doc()
    doc["spec"]["template"]["metadata"]["annotations"] = {"inject.istio.io/templates": "sidecar"}
    assert not is_gateway_deployment(doc)
    assert not is_gateway_deployment({"kind": "Deployment", "spec": {}})
    assert is_gateway_deployment(_doc())
    assert parse_gateway_deployment(_doc()).replicas == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"replicas": -1}, "spec.replicas"),
        ({"selector": {"matchLabels": {"istio": "other"}}}, "spec.selector.matchLabels"),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(GatewayDeploymentError) as info:
        parse_gateway_deployment(_doc(**changes))
    assert info.value.field == field


def test_analyzer_runs_it_instead_of_reporting_rl0104() -> None:
    result = load_text(EGRESS_GATEWAY, "egress.yaml")
    codes = {m.code for m in analyze(result.resources)}
    assert "RL0104" not in codes
    # The Gateway selecting it finds a workload with its labels.
    assert "IST0101" not in codes


def test_analyzer_reports_a_gateway_deployment_without_labels() -> None:
    text = EGRESS_GATEWAY.replace(
        "      labels: {istio: egressgateway, app: istio-egressgateway}\n", ""
    ).replace("  selector: {matchLabels: {istio: egressgateway}}\n", "")
    result = load_text(text, "egress.yaml")
    found = [m for m in analyze(result.resources) if m.code == "RL0106"]
    assert len(found) == 1 and found[0].severity is Severity.ERROR
    assert found[0].field == "spec.template.metadata.labels"
    assert found[0].resource is not None and found[0].resource.name == "istio-egressgateway"
