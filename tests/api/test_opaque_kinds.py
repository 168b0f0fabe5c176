"""Kinds accepted without a schema: Kubernetes workload kinds, EnvoyFilter, Telemetry.

A file holding one loads (nothing of it is refused), and the analyzers say what Ratline
does not do with it; a kind no API defines is still refused.
"""

from __future__ import annotations

from ratline.api import analyze, load_text
from ratline.api.errors import Severity
from ratline.api.kinds import KINDS, OPAQUE_KINDS, lookup, type_name

DEPLOYMENT_AND_SERVICE = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: httpbin, labels: {app: httpbin}}
spec:
  replicas: 1
  selector: {matchLabels: {app: httpbin}}
  template:
    metadata: {labels: {app: httpbin}}
    spec:
      containers: [{name: httpbin, image: kennethreitz/httpbin}]
---
apiVersion: v1
kind: Service
metadata: {name: httpbin}
spec:
  selector: {app: httpbin}
  ports: [{name: http, port: 8000}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {key: value}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reader, namespace: ignored}
rules: []
"""

ENVOY_FILTER = """\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: filter-ratelimit, namespace: istio-system}
spec:
  workloadSelector: {labels: {istio: ingressgateway}}
  configPatches: [{applyTo: HTTP_FILTER, patch: {operation: INSERT_BEFORE}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: envoy}]}]
"""


def test_kubernetes_workload_kinds_load_and_are_reported_as_not_run() -> None:
    result = load_text(DEPLOYMENT_AND_SERVICE, "k8s.yaml")
    assert result.ok, [str(m) for m in result.messages]
    kinds = [r.kind for r in result.resources]
    assert kinds == ["Deployment", "Service", "ConfigMap", "ClusterRole"]
    cluster_role = result.resources[3]
    assert cluster_role.namespace == ""
    findings = {(m.resource.kind, m.code) for m in analyze(result.resources) if m.resource}
    assert ("Deployment", "RL0104") in findings
    assert ("ConfigMap", "RL0104") in findings
    deployment = next(m for m in analyze(result.resources) if m.code == "RL0104")
    assert deployment.severity is Severity.WARNING
    assert "local runtime does not run it" in deployment.message
    assert deployment.field == "kind"


def test_envoy_filter_is_reported_as_not_supported_beside_a_telemetry_that_is() -> None:
    result = load_text(ENVOY_FILTER, "filters.yaml")
    assert result.ok, [str(m) for m in result.messages]
    assert sorted(r.kind for r in result.resources) == ["EnvoyFilter", "Telemetry"]
    findings = [m for m in analyze(result.resources) if m.code == "RAT0001"]
    assert [m.resource.kind for m in findings if m.resource] == ["EnvoyFilter"]
    assert all("not yet supported" in m.message for m in findings)


def test_an_opaque_kind_keeps_its_document_as_written() -> None:
    resource = load_text(ENVOY_FILTER, "filters.yaml").resources[0]
    assert resource.raw["spec"]["configPatches"][0]["applyTo"] == "HTTP_FILTER"


def test_a_kind_no_api_defines_is_still_refused() -> None:
    result = load_text("apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n")
    assert not result.ok
    assert result.errors[0].field == "kind"


def test_a_wrong_version_of_an_opaque_kind_names_the_accepted_ones() -> None:
    result = load_text("apiVersion: apps/v2\nkind: Deployment\nmetadata: {name: a}\nspec: {}\n")
    assert not result.ok
    assert "apps/v1" in result.errors[0].message


def test_a_schema_takes_precedence_over_the_opaque_entry() -> None:
    # Kinds with a schema are never opaque: adding a kind to KINDS plugs its schema in.
    assert not set(KINDS) & {kind for _group, kind in OPAQUE_KINDS}
    assert lookup("networking.istio.io/v1", "VirtualService") is KINDS["VirtualService"]


def test_type_names_of_opaque_kinds() -> None:
    assert type_name("Deployment") == "deployment.apps"
    assert type_name("EnvoyFilter") == "envoyfilter.networking.istio.io"
    assert type_name("ConfigMap") == "configmap"
