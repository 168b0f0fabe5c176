"""RequestAuthentication translation: jwt_authn providers, the "any provider or no token"
requirement, JWKS clusters, and findings for what Envoy would refuse."""

from __future__ import annotations

import json
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from google.protobuf import json_format

from ratline.translate.common import Findings
from ratline.translate.jwt import UNUSABLE_JWKS, JwtConfig, jwks_problem, jwt_config
from tests.translate.security_policies import instance, request_authn, snapshot_with

JWKS = json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "k"}]})


def config_for(spec: str, name: str = "reviews-v1-0") -> tuple[JwtConfig, Findings]:
    snapshot = snapshot_with(request_authn("jwt", spec))
    findings = Findings()
    return jwt_config(snapshot, instance(snapshot, name), findings), findings


def authn(config: JwtConfig) -> jwt_pb2.JwtAuthentication:
    assert config.filter is not None
    message = jwt_pb2.JwtAuthentication()
    assert config.filter.typed_config.Unpack(message)
    return message


def as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def test_rules_become_providers_with_every_field() -> None:
    spec = f"""
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: https://issuer
    audiences: [a, b]
    jwks: '{JWKS}'
    fromHeaders: [{{name: x-jwt, prefix: "Bearer "}}]
    fromParams: [token]
    fromCookies: [session]
    outputPayloadToHeader: x-payload
    forwardOriginalToken: true
    outputClaimToHeaders: [{{header: x-sub, claim: sub}}]
"""
    config, findings = config_for(spec)
    assert not findings.messages
    provider = as_dict(authn(config).providers["default/jwt/0"])
    assert provider == {
        "issuer": "https://issuer",
        "audiences": ["a", "b"],
        "local_jwks": {"inline_string": JWKS},
        "forward": True,
        "from_headers": [{"name": "x-jwt", "value_prefix": "Bearer "}],
        "from_params": ["token"],
        "from_cookies": ["session"],
        "forward_payload_header": "x-payload",
        "payload_in_metadata": "payload",
        "claim_to_headers": [{"header_name": "x-sub", "claim_name": "sub"}],
    }
    assert config.clusters == ()


def test_requirement_is_any_provider_or_a_missing_token() -> None:
    spec = f"""
  jwtRules:
  - {{issuer: one, jwks: '{JWKS}'}}
  - {{issuer: two, jwks: '{JWKS}'}}
"""
    config, _ = config_for(spec)
    (rule,) = authn(config).rules
    assert rule.match.prefix == "/"
    requirements = as_dict(rule.requires)["requires_any"]["requirements"]
    assert requirements == [
        {"provider_name": "default/jwt/0"},
        {"provider_name": "default/jwt/1"},
        {"allow_missing": {}},
    ]
    assert "allow_missing_or_failed" not in str(requirements)


def test_selector_and_namespace_scoping() -> None:
    spec = (
        "  selector: {matchLabels: {app: ratings}}\n"
        f"  jwtRules: [{{issuer: a, jwks: '{JWKS}'}}]"
    )
    config, _ = config_for(spec)
    assert config.filter is None
    config, _ = config_for(spec, "ratings-v1-0")
    assert config.filter is not None


def test_jwks_uri_gets_a_cluster_static_dns_or_tls() -> None:
    spec = """
  jwtRules:
  - {issuer: a, jwksUri: "http://127.0.0.1:8181/jwks.json", timeout: 3s}
  - {issuer: b, jwksUri: "https://keys.example.com/jwks"}
  - {issuer: c, jwksUri: "http://ratings:9080/jwks"}
"""
    config, findings = config_for(spec)
    assert not findings.messages
    providers = authn(config).providers
    first = providers["default/jwt/0"].remote_jwks.http_uri
    assert (first.cluster, first.timeout.seconds) == ("jwks|8181||127.0.0.1", 3)
    assert providers["default/jwt/2"].remote_jwks.http_uri.cluster == (
        "outbound|9080||ratings.default.svc.cluster.local"
    )
    clusters = {c.name: c for c in config.clusters}
    assert clusters["jwks|8181||127.0.0.1"].type == cluster_pb2.Cluster.STATIC
    tls = clusters["jwks|443||keys.example.com"]
    assert tls.type == cluster_pb2.Cluster.STRICT_DNS
    assert tls.transport_socket.name == "envoy.transport_sockets.tls"


def test_invalid_jwks_is_replaced_so_every_token_fails() -> None:
    config, findings = config_for("  jwtRules: [{issuer: a, jwks: 'not json'}]")
    provider = authn(config).providers["default/jwt/0"]
    assert provider.local_jwks.inline_string == UNUSABLE_JWKS
    assert any("jwks is not JSON" in str(m) for m in findings.messages)
    assert jwks_problem('{"keys": []}') == "jwks needs a non-empty `keys` list"
    assert "kty" in (jwks_problem('{"keys": [{"kty": "XYZ"}]}') or "")
    assert "`n`" in (jwks_problem('{"keys": [{"kty": "RSA", "e": "AQAB"}]}') or "")
    assert jwks_problem(UNUSABLE_JWKS) is None


def test_rules_envoy_would_refuse_are_findings() -> None:
    spec = """
  jwtRules:
  - {issuer: a, jwksUri: "ftp://keys/x"}
  - {issuer: b}
  - issuer: c
    jwks: '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'
    fromHeaders: [{name: "bad header"}]
    outputClaimToHeaders: [{header: "x y", claim: sub}]
"""
    config, findings = config_for(spec)
    text = "\n".join(str(m) for m in findings.messages)
    assert "cannot fetch 'ftp://keys/x'" in text
    assert "without jwks or jwksUri" in text
    assert "'bad header' is not an HTTP header name" in text
    assert "'x y' is not an HTTP header name" in text
    assert list(authn(config).providers) == ["default/jwt/2"]
