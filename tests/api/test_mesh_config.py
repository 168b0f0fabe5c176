"""MeshConfig from `mesh.yaml`: defaults, fields and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratline.api import load_mesh_config
from tests.api.test_loader import only, write


def test_mesh_config_defaults_when_missing_or_empty(tmp_path: Path) -> None:
    config, messages = load_mesh_config(tmp_path)
    assert messages == []
    assert config.trust_domain == "cluster.local"
    assert config.root_namespace == "istio-system"
    assert config.outbound_traffic_policy.mode == "ALLOW_ANY"
    assert config.enable_auto_mtls is True
    write(tmp_path / "mesh.yaml", "# nothing yet\n")
    assert load_mesh_config(tmp_path) == (config, [])


def test_mesh_config_fields(tmp_path: Path) -> None:
    write(
        tmp_path / "mesh.yaml",
        """\
trustDomain: example.org
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
accessLogFile: /dev/stdout
defaultConfig:
  drainDuration: 5s
  holdApplicationUntilProxyStarts: true
  proxyMetadata: {A: b}
extensionProviders:
- name: authz
  envoyExtAuthzHttp: {service: authz.default.svc.cluster.local, port: 8000, timeout: 100ms}
- name: otel
  opentelemetry: {service: otel.observability.svc.cluster.local, port: 4317}
""",
    )
    config, messages = load_mesh_config(tmp_path)
    assert messages == []
    assert config.trust_domain == "example.org"
    assert config.outbound_traffic_policy.mode == "REGISTRY_ONLY"
    assert config.default_config.drain_duration == 5.0
    assert config.default_config.proxy_metadata == {"A": "b"}
    provider = config.extension_provider("authz")
    assert provider is not None and provider.envoy_ext_authz_http is not None
    assert provider.envoy_ext_authz_http.timeout == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (
            "outboundTrafficPolicy: {mode: NEVER}\n",
            "outboundTrafficPolicy.mode",
            "must be one of: ALLOW_ANY, REGISTRY_ONLY",
        ),
        ("trustDomains: x\n", "trustDomains", "unknown field"),
        (
            "defaultConfig: {drainDuration: forever}\n",
            "defaultConfig.drainDuration",
            "invalid duration 'forever': use e.g. 1s, 0.5s, 100ms, 1m",
        ),
        (
            "extensionProviders: [{name: x}]\n",
            "extensionProviders[0]",
            "set exactly one of envoyExtAuthzHttp, envoyExtAuthzGrpc, prometheus, zipkin, "
            "opentelemetry, envoyFileAccessLog, envoyOtelAls",
        ),
    ],
)
def test_mesh_config_errors(tmp_path: Path, text: str, field: str, message: str) -> None:
    write(tmp_path / "mesh.yaml", text)
    config, messages = load_mesh_config(tmp_path)
    error = only(messages)
    assert (error.source.file, error.field, error.message) == (
        str(tmp_path / "mesh.yaml"),
        field,
        message,
    )
    assert config.trust_domain == "cluster.local"


def test_mesh_config_bad_yaml(tmp_path: Path) -> None:
    write(tmp_path / "mesh.yaml", "trustDomain: [x\n")
    error = only(load_mesh_config(tmp_path)[1])
    assert error.message.startswith("invalid YAML at line ")
    write(tmp_path / "mesh.yaml", "- a\n")
    assert only(load_mesh_config(tmp_path)[1]).message == "MeshConfig must be a mapping"
