"""Helpers for security translation tests: the test mesh with policies and a mesh config."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ratline.api.loader import load_text
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.model.snapshot import MeshSnapshot
from ratline.registry.instances import WorkloadInstance
from tests.translate import mesh

MESH_CONFIG = {
    "extensionProviders": [
        {
            "name": "http-authz",
            "envoyExtAuthzHttp": {
                "service": "127.0.0.1",
                "port": 9191,
                "includeRequestHeadersInCheck": ["x-ext-authz"],
                "headersToUpstreamOnAllow": ["x-authz-*"],
                "statusOnError": "503",
                "timeout": "2s",
            },
        },
        {
            "name": "grpc-authz",
            "envoyExtAuthzGrpc": {
                "service": "authz-ns/authz.example.com",
                "port": 9000,
                "includeRequestBodyInCheck": {"allowPartialMessage": True},
            },
        },
        {
            "name": "mesh-authz",
            "envoyExtAuthzHttp": {"service": "ratings.default.svc.cluster.local", "port": 9080},
        },
    ]
}


def snapshot_with(policies: str, mesh_config: dict[str, Any] | None = None) -> MeshSnapshot:
    """The bookinfo-like test snapshot plus `policies` (YAML) in `extra`."""
    loaded = load_text(policies, "policies.yaml")
    loaded.raise_for_errors()
    extra: dict[str, list[Any]] = {}
    for resource in loaded.resources:
        extra.setdefault(resource.kind, []).append(resource)
    config = MeshConfig.model_validate(mesh_config if mesh_config is not None else MESH_CONFIG)
    base = mesh.snapshot(mesh_config=config)
    return replace(base, extra={k: tuple(v) for k, v in extra.items()})


def instance(snapshot: MeshSnapshot, name: str) -> WorkloadInstance:
    found = snapshot.instance(mesh.node(name))
    assert found is not None
    return found


def authz(name: str, spec: str, namespace: str = "default") -> str:
    """An AuthorizationPolicy document; `spec` is indented YAML (two spaces)."""
    return (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n---\n"
    )


def request_authn(name: str, spec: str, namespace: str = "default") -> str:
    return (
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}\n---\n"
    )
