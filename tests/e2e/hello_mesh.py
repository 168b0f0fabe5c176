"""The small `hello` mesh that e2e, reliability and security tests build on.

A Service `hello:8000` exposed through the ingress gateway, and Workloads running a tiny
Python app that honours `PORT`; each test group adds what it needs (replicas, a
restartPolicy, a client workload with its own service account).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

HELLO_APP = Path(__file__).resolve().parents[1] / "runtime" / "fixtures" / "hello_app.py"
"""Answers `hello from INSTANCE (pid N)`; copied into the mesh directory as hello_app.py."""

SERVICE_AND_GATEWAY_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector:
    app: hello
  ports:
  - name: http
    port: 8000
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: hello-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: hello
spec:
  hosts: ["*"]
  gateways: [hello-gateway]
  http:
  - route:
    - destination:
        host: hello
        port:
          number: 8000
"""


def workload_yaml(
    name: str = "hello-v1",
    *,
    app_file: str = "hello_app.py",
    labels: Mapping[str, str] | None = None,
    replicas: int = 1,
    service_account: str | None = None,
    port: int = 8000,
    extra: str = "",
) -> str:
    """A Workload running `app_file` from the mesh directory; `extra` adds spec lines."""
    labels = labels if labels is not None else {"app": "hello", "version": "v1"}
    label_lines = "".join(f"    {k}: {v}\n" for k, v in labels.items())
    account = f"  serviceAccount: {service_account}\n" if service_account else ""
    return (
        "apiVersion: ratline.dev/v1alpha1\n"
        "kind: Workload\n"
        "metadata:\n"
        f"  name: {name}\n"
        "  labels:\n"
        f"{label_lines}"
        "spec:\n"
        f"{account}"
        f"  replicas: {replicas}\n"
        f"  command: [{sys.executable}, {app_file}]\n"
        "  ports:\n"
        "  - name: http\n"
        f"    containerPort: {port}\n"
        f"{extra}"
    )


MESH_YAML = SERVICE_AND_GATEWAY_YAML + "---\n" + workload_yaml()
"""Service, Gateway, VirtualService and one `hello-v1` instance."""
