"""RequestAuthentication → Envoy's `envoy.filters.http.jwt_authn` filter, and clusters for
remote JWKS URIs.

As Istio: every JWT rule of every RequestAuthentication governing a workload becomes a
provider; the single requirement is "any of the providers, or no token at all", so an
invalid token answers 401 (`Jwt verification fails`) and a missing token passes through
(an AuthorizationPolicy with `requestPrincipals` is what makes a token mandatory). The
verified payload lands in dynamic metadata under `JWT_FILTER`/`PAYLOAD_KEY`, where the RBAC
matchers of `ratline.translate.rbac` read `request.auth.*`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from ratline.api.envelope import Resource
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import WorkloadInstance
from ratline.translate.common import Findings, duration, pack_any
from ratline.translate.security_targets import (
    HEADER_NAME,
    applicable,
    external_cluster,
    mesh_service_cluster,
    unresolved,
)

JWT_FILTER = "envoy.filters.http.jwt_authn"
PAYLOAD_KEY = "payload"
"""The dynamic metadata key (under `JWT_FILTER`) holding the verified token's claims."""
REQUEST_AUTHENTICATION = "RequestAuthentication"
DEFAULT_JWKS_TIMEOUT_S = 5.0
JWKS_CACHE_S = 300.0

UNUSABLE_JWKS = json.dumps(
    {
        "keys": [
            {
                "kty": "RSA",
                "e": "AQAB",
                "n": "rW5P-D8mz6snuh5YPmvqS1a5MooJyW7ALo6nQLwP-aTsMRuh2H-xH3ZL17VueGt1p3jdZeZm"
                "XGPh_wnawsMTwk4mDA_vQUjRicVGyAHnc8ZNZTZ3gk2rvrrRK2D8ZmnkUv2y-nJQpKqOAUZZ9PS4"
                "WtJOte__c4qO1oEMrOZs2N3pP1D9qYgWWhLz80ePRP-f_DbSCnXNe_hTwMbXcdA9QY4AZK4044bj"
                "25Wzrjom4FYqk8qDGQAkPFhzeoA-Y8MlQiP-ZR_JkKjJlFsFxOW5Adl4TX2cWgOcCRucr0tUA0Oe"
                "7JUVBUdbvMcyaORRXfpjqPRZR55ycybfVVY9ppXq3w",
            }
        ]
    }
)
"""A public key whose private half was thrown away: stands in for invalid inline JWKS so
that every token fails (as Istio does) rather than Envoy rejecting the whole listener."""

_REQUIRED_MEMBERS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "oct": ("k",), "OKP": ("crv", "x")}
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


def jwks_problem(text: str) -> str | None:
    """Why an inline JWKS would be refused by Envoy, or None when it looks usable."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"jwks is not JSON ({exc})"
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not keys:
        return "jwks needs a non-empty `keys` list"
    for index, key in enumerate(keys):
        if not isinstance(key, dict) or key.get("kty") not in _REQUIRED_MEMBERS:
            return f"jwks key {index}: kty must be one of {', '.join(_REQUIRED_MEMBERS)}"
        for member in _REQUIRED_MEMBERS[key["kty"]]:
            value = key.get(member)
            if not isinstance(value, str) or (member != "crv" and not _B64URL.match(value)):
                return f"jwks key {index} ({key['kty']}): `{member}` must be base64url text"
    return None


@dataclass(frozen=True)
class JwtConfig:
    """What RequestAuthentication asks of one proxy: its jwt_authn filter and JWKS clusters."""

    filter: hcm_pb2.HttpFilter | None = None
    clusters: tuple[cluster_pb2.Cluster, ...] = ()


def jwks_cluster_name(host: str, port: int) -> str:
    return f"jwks|{port}||{host}"


def _jwks_target(
    snapshot: MeshSnapshot, uri: str, namespace: str
) -> tuple[str, cluster_pb2.Cluster | None] | None:
    """(cluster name, cluster to add or None when it is a mesh service's) for a JWKS URI."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    https = parts.scheme == "https"
    try:
        port = parts.port or (443 if https else 80)
    except ValueError:
        return None
    mesh = mesh_service_cluster(snapshot, parts.hostname, port, namespace)
    if mesh is not None:
        return mesh, None
    name = jwks_cluster_name(parts.hostname, port)
    return name, external_cluster(name, parts.hostname, port, tls=https)


def _provider(
    rule: Any, snapshot: MeshSnapshot, policy: Resource[Any], path: str, findings: Findings
) -> tuple[jwt_pb2.JwtProvider, cluster_pb2.Cluster | None] | None:
    provider = jwt_pb2.JwtProvider(issuer=rule.issuer, payload_in_metadata=PAYLOAD_KEY)
    provider.audiences.extend(rule.audiences)
    cluster = None
    if rule.jwks is not None:
        problem = jwks_problem(rule.jwks)
        if problem is not None:
            findings.add(policy, f"{path}.jwks", f"{problem}; every token will be refused")
        provider.local_jwks.inline_string = rule.jwks if problem is None else UNUSABLE_JWKS
    elif rule.jwks_uri is not None:
        target = _jwks_target(snapshot, rule.jwks_uri, policy.namespace)
        if target is None:
            unresolved(findings, policy, f"{path}.jwksUri", f"cannot fetch {rule.jwks_uri!r}")
            return None
        cluster_name, cluster = target
        remote = provider.remote_jwks
        remote.http_uri.uri = rule.jwks_uri
        remote.http_uri.cluster = cluster_name
        timeout = rule.timeout if rule.timeout is not None else DEFAULT_JWKS_TIMEOUT_S
        remote.http_uri.timeout.CopyFrom(duration(timeout))
        remote.cache_duration.CopyFrom(duration(JWKS_CACHE_S))
    else:
        findings.not_supported(policy, path, "a JWT rule without jwks or jwksUri (OIDC discovery)")
        return None

    def header_ok(name: str, field: str) -> bool:
        if HEADER_NAME.match(name):
            return True
        findings.add(policy, f"{path}.{field}", f"{name!r} is not an HTTP header name; ignored")
        return False

    for index, header in enumerate(rule.from_headers):
        if header_ok(header.name, f"fromHeaders[{index}].name"):
            provider.from_headers.add(name=header.name, value_prefix=header.prefix or "")
    provider.from_params.extend(p for p in rule.from_params if p)
    provider.from_cookies.extend(c for c in rule.from_cookies if c)
    provider.forward = bool(rule.forward_original_token)
    payload_header = rule.output_payload_to_header
    if payload_header and header_ok(payload_header, "outputPayloadToHeader"):
        provider.forward_payload_header = payload_header
    for index, claim in enumerate(rule.output_claim_to_headers):
        if header_ok(claim.header, f"outputClaimToHeaders[{index}].header"):
            provider.claim_to_headers.add(header_name=claim.header, claim_name=claim.claim)
    return provider, cluster


def jwt_config(snapshot: MeshSnapshot, instance: WorkloadInstance, findings: Findings) -> JwtConfig:
    """The jwt_authn filter (None when no RequestAuthentication applies) and its clusters."""
    config = jwt_pb2.JwtAuthentication()
    clusters: dict[str, cluster_pb2.Cluster] = {}
    requirement = jwt_pb2.JwtRequirement()
    for policy in applicable(snapshot, REQUEST_AUTHENTICATION, instance, findings):
        for index, rule in enumerate(policy.spec.jwt_rules):
            path = f"spec.jwtRules[{index}]"
            built = _provider(rule, snapshot, policy, path, findings)
            if built is None:
                continue
            provider, cluster = built
            name = f"{policy.namespace}/{policy.name}/{index}"
            config.providers[name].CopyFrom(provider)
            requirement.requires_any.requirements.add(provider_name=name)
            if cluster is not None:
                clusters[cluster.name] = cluster
    if not config.providers:
        return JwtConfig()
    requirement.requires_any.requirements.add().allow_missing.SetInParent()
    rule = config.rules.add()
    rule.match.prefix = "/"
    rule.requires.CopyFrom(requirement)
    http_filter = hcm_pb2.HttpFilter(name=JWT_FILTER, typed_config=pack_any(config))
    return JwtConfig(filter=http_filter, clusters=tuple(clusters.values()))
