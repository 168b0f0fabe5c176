"""AuthorizationPolicy end to end: policies applied with `ratline apply`, requests through
the ingress gateway to a backend whose real Envoy sidecar enforces them.

Denials by RBAC answer `403 RBAC: access denied`; CUSTOM policies call a real HTTP
ext_authz server that this test runs (it allows requests carrying `x-ext-authz: allow`).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.rpc import code_pb2

from tests.e2e.security_mesh import (
    RBAC_DENIED,
    Case,
    SecurityMesh,
    StubServer,
    request,
    start_mesh,
)
from tests.helpers import http_get, wait_for

pytestmark = [pytest.mark.e2e]

EXT_DENIED = "denied by the test's ext_authz"
GRPC_DENIED = "denied by the test's gRPC ext_authz"


def _ext_authz(method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    if headers.get("x-ext-authz") == "allow":
        return 200, ""
    return 403, EXT_DENIED


@pytest.fixture(scope="module")
def ext_authz() -> Iterator[StubServer]:
    server = StubServer(_ext_authz)
    try:
        yield server
    finally:
        server.close()


class GrpcAuthorization(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """Envoy's ext_authz gRPC API: allows requests carrying `x-ext-authz: allow`."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def Check(self, request: Any, context: Any) -> Any:
        http = request.attributes.request.http
        self.paths.append(http.path)
        response = external_auth_pb2.CheckResponse()
        if http.headers.get("x-ext-authz") == "allow":
            response.status.code = code_pb2.OK
        else:
            response.status.code = code_pb2.PERMISSION_DENIED
            response.denied_response.status.code = 403
            response.denied_response.body = GRPC_DENIED
        return response


@pytest.fixture(scope="module")
def grpc_authz() -> Iterator[tuple[GrpcAuthorization, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = GrpcAuthorization()
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, port
    finally:
        server.stop(grace=None)


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory,
    ext_authz: StubServer,
    grpc_authz: tuple[GrpcAuthorization, int],
) -> Iterator[SecurityMesh]:
    mesh_yaml = f"""
extensionProviders:
- name: test-ext-authz
  envoyExtAuthzHttp:
    service: 127.0.0.1
    port: {ext_authz.port}
    includeRequestHeadersInCheck: [x-ext-authz]
- name: test-grpc-authz
  envoyExtAuthzGrpc:
    service: 127.0.0.1
    port: {grpc_authz[1]}
- name: missing-ext-authz
  envoyExtAuthzHttp:
    service: 127.0.0.1
    port: 1
    statusOnError: "503"
"""
    mesh = start_mesh(tmp_path_factory.mktemp("authz"), mesh_yaml)
    try:
        yield SecurityMesh(mesh)
    finally:
        mesh.down()


def policy(name: str, spec: str, namespace: str = "default") -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n---\n"
    )


SELECT = "  selector: {matchLabels: {app: httpbin}}\n"

ALLOW_MATRIX = policy("allow-some", SELECT + """
  action: ALLOW
  rules:
  - to: [{operation: {methods: [GET], paths: ["/public/*", "/exact"]}}]
  - to: [{operation: {paths: ["/headers"]}}]
    when: [{key: "request.headers[x-user]", values: [alice, "bob*"]}]
  - from: [{source: {ipBlocks: ["127.0.0.0/8"]}}]
    to: [{operation: {paths: ["*/ip"]}}]
  - from: [{source: {notIpBlocks: ["127.0.0.0/8"]}}]
    to: [{operation: {paths: ["/notip"]}}]
  - to: [{operation: {paths: ["/cond"]}}]
    when:
    - {key: source.ip, values: ["127.0.0.1"]}
    - {key: destination.port, values: ["8080"]}
    - {key: "request.headers[x-env]", notValues: [prod]}
""")


def test_allow_rules_match_methods_paths_headers_and_ips(secured: SecurityMesh) -> None:
    secured.use(ALLOW_MATRIX)
    secured.expect([
        Case("/anything", 403, RBAC_DENIED),
        Case("/public/a", 200, '"path": "/public/a"'),
        Case("/public/a", 403, RBAC_DENIED, method="POST"),
        Case("/exact", 200),
        Case("/exact/more", 403, RBAC_DENIED),
        Case("/headers", 200, headers={"x-user": "alice"}),
        Case("/headers", 200, headers={"x-user": "bobby"}),
        Case("/headers", 403, RBAC_DENIED, headers={"x-user": "carol"}),
        Case("/headers", 403, RBAC_DENIED),
        Case("/my/ip", 200),
        Case("/notip", 403, RBAC_DENIED),
        Case("/cond", 200),
        Case("/cond", 403, RBAC_DENIED, headers={"x-env": "prod"}),
    ])


def test_deny_wins_over_allow_and_ports_are_the_workloads(secured: SecurityMesh) -> None:
    secured.use(
        policy("deny-admin", SELECT + """
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin*"]}}]
  - when: [{key: "request.headers[x-block]", values: ["*"]}]
  - to: [{operation: {hosts: ["blocked.example.com", "*.evil.test"]}}]
""")
        + policy("allow-port", SELECT + """
  rules:
  - to: [{operation: {ports: ["8080"]}}]
""")
    )
    secured.expect([
        Case("/admin/users", 403, RBAC_DENIED),
        Case("/", 200),
        Case("/x", 403, RBAC_DENIED, headers={"x-block": "1"}),
        Case("/administrator", 403, RBAC_DENIED),
        Case("/", 403, RBAC_DENIED, headers={"host": "Blocked.Example.com"}),
        Case("/", 403, RBAC_DENIED, headers={"host": "blocked.example.com:80"}),
        Case("/", 403, RBAC_DENIED, headers={"host": "www.evil.test"}),
        Case("/", 200, headers={"host": "fine.example.com"}),
    ])
    secured.use(policy("allow-other-port", SELECT + """
  rules:
  - to: [{operation: {ports: ["9999"]}}]
"""))
    secured.expect([Case("/", 403, RBAC_DENIED), Case("/admin", 403, RBAC_DENIED)])


def test_empty_allow_policy_denies_everything_and_an_empty_rule_allows(
    secured: SecurityMesh,
) -> None:
    secured.use(policy("allow-nothing", SELECT.rstrip("\n") + "\n  action: ALLOW"))
    secured.expect([Case("/", 403, RBAC_DENIED), Case("/a/b", 403, RBAC_DENIED)])
    secured.use(policy("allow-all", SELECT + "  rules: [{}]"))
    secured.expect([Case("/", 200), Case("/a/b", 200)])


def test_root_namespace_policy_applies_mesh_wide(secured: SecurityMesh) -> None:
    secured.use(policy("root-deny", """
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/root-denied"]}}]}]
""", namespace="istio-system"))
    secured.expect([Case("/root-denied", 403, RBAC_DENIED), Case("/fine", 200)])


def test_target_ref_service(secured: SecurityMesh) -> None:
    secured.use(policy("by-service", """
  targetRef: {kind: Service, group: "", name: httpbin}
  action: DENY
  rules: [{to: [{operation: {methods: [DELETE]}}]}]
"""))
    secured.expect([Case("/", 403, RBAC_DENIED, method="DELETE"), Case("/", 200)])


def test_audit_never_denies(secured: SecurityMesh) -> None:
    secured.use(
        policy("audit-all", SELECT + "  action: AUDIT\n  rules: [{}]")
        + policy("deny-x", SELECT + """
  action: DENY
  rules: [{to: [{operation: {paths: ["/x"]}}]}]
""")
    )
    secured.expect([Case("/x", 403, RBAC_DENIED), Case("/", 200), Case("/y", 200)])


def test_custom_calls_the_ext_authz_server_only_for_matching_requests(
    secured: SecurityMesh, ext_authz: StubServer
) -> None:
    secured.use(policy("ext", SELECT + """
  action: CUSTOM
  provider: {name: test-ext-authz}
  rules: [{to: [{operation: {paths: ["/ext/*"]}}]}]
""") + policy("deny-after-ext", SELECT + """
  action: DENY
  rules: [{to: [{operation: {paths: ["/ext/denied"]}}]}]
"""))
    secured.expect([
        Case("/ext/a", 403, EXT_DENIED),
        Case("/ext/a", 200, headers={"x-ext-authz": "allow"}),
        Case("/ext/denied", 403, RBAC_DENIED, headers={"x-ext-authz": "allow"}),
        Case("/other", 200),
    ])
    ext_authz.requests.clear()
    secured.expect([Case("/other", 200), Case("/ext/b", 403, EXT_DENIED)])
    checked = [path for _, path, _ in ext_authz.requests]
    assert checked and all(p.startswith("/ext/") for p in checked), checked
    assert all(h.get("x-ext-authz") is None for _, _, h in ext_authz.requests)


def test_custom_grpc_provider(
    secured: SecurityMesh, grpc_authz: tuple[GrpcAuthorization, int]
) -> None:
    servicer, _ = grpc_authz
    secured.use(policy("ext-grpc", SELECT + """
  action: CUSTOM
  provider: {name: test-grpc-authz}
  rules: [{to: [{operation: {notPaths: ["/healthz"]}}]}]
"""))
    secured.expect([
        Case("/data", 403, GRPC_DENIED),
        Case("/data", 200, headers={"x-ext-authz": "allow"}),
        Case("/healthz", 200),
    ])
    assert "/data" in servicer.paths and "/healthz" not in servicer.paths


def test_custom_provider_that_is_down_answers_its_status_on_error(
    secured: SecurityMesh,
) -> None:
    secured.use(policy("ext-down", SELECT + """
  action: CUSTOM
  provider: {name: missing-ext-authz}
  rules: [{to: [{operation: {paths: ["/down"]}}]}]
"""))
    secured.expect([Case("/down", 503), Case("/up", 200)])


def test_principals_and_namespaces_come_from_mtls_peer_identities(secured: SecurityMesh) -> None:
    # The gateway reaches the backend over mTLS with its own SPIFFE identity.
    gateway = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    secured.use(policy("by-identity", SELECT + f"""
  rules:
  - from: [{{source: {{principals: ["{gateway}"]}}}}]
    to: [{{operation: {{paths: ["/by-principal"]}}}}]
  - from: [{{source: {{principals: ["cluster.local/ns/default/sa/*"]}}}}]
    to: [{{operation: {{paths: ["/other-principal"]}}}}]
  - from: [{{source: {{namespaces: ["istio-system"]}}}}]
    to: [{{operation: {{paths: ["/by-namespace"]}}}}]
  - from: [{{source: {{notNamespaces: ["istio-system"]}}}}]
    to: [{{operation: {{paths: ["/not-namespace"]}}}}]
  - to: [{{operation: {{paths: ["/by-condition"]}}}}]
    when: [{{key: source.principal, values: ["*/sa/istio-ingressgateway-service-account"]}}]
"""))
    secured.expect([
        Case("/by-principal", 200),
        Case("/other-principal", 403, RBAC_DENIED),
        Case("/by-namespace", 200),
        Case("/not-namespace", 403, RBAC_DENIED),
        Case("/by-condition", 200),
    ])


def test_policies_selecting_the_ingress_gateway_apply_at_the_gateway(
    secured: SecurityMesh,
) -> None:
    secured.use(policy("at-gateway", """
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/gw-blocked"]}}]
  - from: [{source: {notRemoteIpBlocks: ["127.0.0.0/8"]}}]
""", namespace="istio-system"))
    secured.expect([Case("/gw-blocked", 403, RBAC_DENIED), Case("/open", 200)])


def _lds_updates(admin_port: int) -> int:
    """How many LDS updates the Envoy with this admin port has applied."""
    _, text, _ = http_get(
        f"http://127.0.0.1:{admin_port}/stats?filter=^listener_manager.lds.update_success$"
    )
    return int(text.rpartition(":")[2])


def _stale_answers(secured: SecurityMesh, admin_port: int, before: int, want: int) -> int:
    """Requests answered the old way after the sidecar applied its new listeners."""
    wait_for(lambda: _lds_updates(admin_port) > before, timeout=20, what="the LDS update")
    stale = 0
    for _ in range(STALE_LIMIT + 1):
        status, _body = request(secured.url("/denied"))
        if status == want:
            return stale
        stale += 1
    return stale


STALE_LIMIT = 3
"""Requests a pooled gateway connection may still carry through the sidecar's old filter
chain once the new one is in place: one per connection (the one that closes it). With
Envoy's gradual drain it was every request for about a second (~75 here)."""


def test_a_deleted_deny_policy_lets_the_next_requests_through(secured: SecurityMesh) -> None:
    secured.use("")
    secured.expect([Case("/denied", 200)])
    admin_port = secured.mesh.run_info()["instances"][0]["sidecar"]["admin_port"]
    deny = policy("deny-path", SELECT + """
  action: DENY
  rules: [{to: [{operation: {paths: ["/denied"]}}]}]
""")
    for _trial in range(3):
        before = _lds_updates(admin_port)
        secured.use(deny)
        assert _stale_answers(secured, admin_port, before, 403) <= STALE_LIMIT
        before = _lds_updates(admin_port)
        secured.use("")
        assert _stale_answers(secured, admin_port, before, 200) <= STALE_LIMIT
