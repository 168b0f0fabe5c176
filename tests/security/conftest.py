"""Fixtures of the security tests: the real-mesh fixture of tests/e2e and a small mesh."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.e2e.conftest import make_mesh  # noqa: F401  (re-exported fixture)

APP = Path(__file__).resolve().parents[1] / "runtime" / "fixtures" / "hello_app.py"

MESH_YAML = f"""\
apiVersion: v1
kind: Service
metadata: {{name: hello}}
spec:
  selector: {{app: hello}}
  ports:
  - {{name: http, port: 8000}}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: hello-v1
  labels: {{app: hello, version: v1}}
spec:
  serviceAccount: hello-sa
  command: [{sys.executable}, hello_app.py]
  ports:
  - {{name: http, containerPort: 8000}}
---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: client
  labels: {{app: client}}
spec:
  serviceAccount: client-sa
  command: [{sys.executable}, hello_app.py]
  ports:
  - {{name: http, containerPort: 8001}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: hello-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: hello}}
spec:
  hosts: ["*"]
  gateways: [hello-gateway]
  http:
  - route:
    - destination: {{host: hello, port: {{number: 8000}}}}
"""


def mesh_files() -> dict[str, str]:
    return {"hello.yaml": MESH_YAML, "hello_app.py": APP.read_text()}
