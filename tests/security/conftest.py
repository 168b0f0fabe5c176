"""Fixtures of the security tests: the real-mesh fixture of tests/e2e and a small mesh."""

from __future__ import annotations

from tests.e2e.conftest import make_mesh  # noqa: F401  (re-exported fixture)
from tests.e2e.hello_mesh import HELLO_APP, SERVICE_AND_GATEWAY_YAML, workload_yaml

APP = HELLO_APP

MESH_YAML = "---\n".join(
    [
        SERVICE_AND_GATEWAY_YAML,
        workload_yaml(service_account="hello-sa"),
        workload_yaml("client", labels={"app": "client"}, service_account="client-sa", port=8001),
    ]
)


def mesh_files() -> dict[str, str]:
    return {"hello.yaml": MESH_YAML, "hello_app.py": APP.read_text()}
