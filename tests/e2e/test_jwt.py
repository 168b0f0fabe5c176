"""RequestAuthentication end to end: tokens the test signs, verified by the backend's real
Envoy sidecar (jwt_authn), alone and with AuthorizationPolicies on request principals and
claims.

As Istio answers: an invalid token (expired, unknown issuer, wrong key) is 401, a token
for another audience 403, a missing token passes unless a policy asks for a principal,
which RBAC then denies with 403.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.e2e.jwt_signing import SigningKey
from tests.e2e.security_mesh import (
    RBAC_DENIED,
    Case,
    SecurityMesh,
    StubServer,
    request,
    start_mesh,
)

pytestmark = [pytest.mark.e2e]

ISSUER = "https://issuer.ratline.test"
REMOTE_ISSUER = "https://remote.ratline.test"
TRUSTED = SigningKey("key-1")
IMPOSTOR = SigningKey("key-1")
"""Same key id as TRUSTED, different key: its signatures must not verify."""
REMOTE = SigningKey("remote-1")
REMOTE_IMPOSTOR = SigningKey("remote-1")


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[StubServer]:
    server = StubServer(lambda method, path, headers: (200, REMOTE.jwks()))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecurityMesh]:
    mesh = start_mesh(tmp_path_factory.mktemp("jwt"))
    try:
        yield SecurityMesh(mesh)
    finally:
        mesh.down()


def request_authentication(jwks_port: int) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
  jwtRules:
  - issuer: {ISSUER}
    audiences: [httpbin]
    jwks: '{TRUSTED.jwks()}'
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - {{header: x-jwt-sub, claim: sub}}
  - issuer: {REMOTE_ISSUER}
    jwksUri: http://127.0.0.1:{jwks_port}/jwks.json
    fromHeaders: [{{name: x-token}}]
    fromParams: [token]
    forwardOriginalToken: true
---
"""


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_token_matrix_without_authorization_policy(
    secured: SecurityMesh, jwks_server: StubServer
) -> None:
    secured.use(request_authentication(jwks_server.port))
    valid = TRUSTED.token(ISSUER, aud="httpbin")
    secured.expect([
        Case("/", 401, "Jwt", headers=bearer(TRUSTED.token(ISSUER, ttl=-600, aud="httpbin"))),
        Case("/", 200, '"x-jwt-sub": "alice"', headers=bearer(valid)),
        Case("/", 200),
        Case("/", 401, "Jwt issuer is not configured",
             headers=bearer(TRUSTED.token("https://other.test", aud="httpbin"))),
        Case("/", 403, "Audiences in Jwt are not allowed",
             headers=bearer(TRUSTED.token(ISSUER, aud="someone-else"))),
        Case("/", 401, "Jwt verification fails",
             headers=bearer(IMPOSTOR.token(ISSUER, aud="httpbin"))),
        Case("/", 401, "Jwt", headers=bearer("not.a.jwt")),
    ])
    status, body = request(secured.url("/"), headers=bearer(valid))
    assert status == 200
    seen = json.loads(body)["headers"]
    assert "authorization" not in seen, "forwardOriginalToken is false: the token is removed"
    assert "x-jwt-payload" in seen


def test_remote_jwks_from_header_and_param(
    secured: SecurityMesh, jwks_server: StubServer
) -> None:
    secured.use(request_authentication(jwks_server.port))
    remote = REMOTE.token(REMOTE_ISSUER, subject="bob")
    secured.expect([
        Case("/", 200, '"x-token"', headers={"x-token": remote}),
        Case(f"/?token={remote}", 200),
        Case("/", 401, "Jwt verification fails",
             headers={"x-token": REMOTE_IMPOSTOR.token(REMOTE_ISSUER, subject="bob")}),
        Case("/", 401, "Jwks doesn't have key",
             headers={"x-token": TRUSTED.token(REMOTE_ISSUER, subject="bob")}),
    ])
    assert any(path == "/jwks.json" for _, path, _ in jwks_server.requests)


def authorization(spec: str) -> str:
    return f"""
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: require-jwt, namespace: default}}
spec:
  selector: {{matchLabels: {{app: httpbin}}}}
{spec}
"""


def test_request_principals_make_a_token_mandatory(
    secured: SecurityMesh, jwks_server: StubServer
) -> None:
    secured.use(request_authentication(jwks_server.port) + authorization("""
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
"""))
    secured.expect([
        Case("/", 403, RBAC_DENIED),
        Case("/", 200, headers=bearer(TRUSTED.token(ISSUER, aud="httpbin"))),
        Case("/", 401, "Jwt verification fails",
             headers=bearer(IMPOSTOR.token(ISSUER, aud="httpbin"))),
    ])


def test_request_principal_and_claims_conditions(
    secured: SecurityMesh, jwks_server: StubServer
) -> None:
    secured.use(request_authentication(jwks_server.port) + authorization(f"""
  rules:
  - from: [{{source: {{requestPrincipals: ["{ISSUER}/alice"]}}}}]
    to: [{{operation: {{paths: ["/alice*"]}}}}]
  - to: [{{operation: {{paths: ["/admins"]}}}}]
    when:
    - {{key: "request.auth.claims[groups]", values: [admins]}}
  - to: [{{operation: {{paths: ["/nested"]}}}}]
    when:
    - {{key: "request.auth.claims[org][team]", values: [mesh]}}
  - to: [{{operation: {{paths: ["/remote"]}}}}]
    when:
    - {{key: request.auth.principal, values: ["{REMOTE_ISSUER}/*"]}}
"""))
    def tok(subject: str, **claims: object) -> dict[str, str]:
        return bearer(TRUSTED.token(ISSUER, subject=subject, aud="httpbin", **claims))

    secured.expect([
        Case("/alice/x", 200, headers=tok("alice")),
        Case("/alice/x", 403, RBAC_DENIED, headers=tok("bob")),
        Case("/alice/x", 403, RBAC_DENIED),
        Case("/admins", 200, headers=tok("bob", groups=["users", "admins"])),
        Case("/admins", 403, RBAC_DENIED, headers=tok("bob", groups=["users"])),
        Case("/admins", 200, headers=tok("carol", groups="admins")),
        Case("/nested", 200, headers=tok("bob", org={"team": "mesh"})),
        Case("/nested", 403, RBAC_DENIED, headers=tok("bob", org={"team": "web"})),
        Case("/remote", 200, headers={"x-token": REMOTE.token(REMOTE_ISSUER)}),
        Case("/remote", 403, RBAC_DENIED, headers=tok("alice")),
    ])
