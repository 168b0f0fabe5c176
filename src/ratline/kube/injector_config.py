"""The MutatingWebhookConfiguration `ratline-sidecar-injector` (pure).

The control plane serves `POST /inject` on its webhook HTTPS port (beside `/validate`);
this object tells the API server which pod creations to send there, with Istio's
selectors for the default revision (Helm's chart renders the same object):

- `namespace.sidecar-injector.istio.io`: namespaces labelled `istio-injection=enabled`,
  pods not labelled `sidecar.istio.io/inject=false`;
- `rev.namespace.sidecar-injector.istio.io`: namespaces labelled `istio.io/rev=REV`
  (and no `istio-injection` label);
- `object.sidecar-injector.istio.io`: pods labelled `sidecar.istio.io/inject=true` in
  namespaces with neither label.

`failurePolicy: Fail`, as Istio's: with the webhook down, a pod that would be injected
is not created (its ReplicaSet retries), so no pod ever runs outside the mesh by
accident; pods the selectors do not match are created as usual. `reinvocationPolicy:
Never`, `sideEffects: None`, CREATE of `pods` only.
"""

from __future__ import annotations

import base64
from typing import Any

from ratline.kube.injection_annotations import INJECT

INJECTOR_CONFIGURATION = "ratline-sidecar-injector"
INJECT_PATH = "/inject"
INJECTION_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"
FAILURE_POLICY = "Fail"


def _client(ca_bundle_pem: str, url: str, service: str, namespace: str) -> dict[str, Any]:
    client: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle_pem.encode()).decode()}
    if service:
        client["service"] = {"name": service, "namespace": namespace,
                             "path": INJECT_PATH, "port": 443}
    else:
        client["url"] = url.rstrip("/") + INJECT_PATH
    return client


def _webhook(name: str, client: dict[str, Any], namespace_selector: list[dict[str, Any]],
             object_selector: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": client,
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"],
                   "resources": ["pods"], "scope": "*"}],
        "namespaceSelector": {"matchExpressions": namespace_selector},
        "objectSelector": {"matchExpressions": object_selector},
        "failurePolicy": FAILURE_POLICY,
        "sideEffects": "None",
        "reinvocationPolicy": "Never",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
    }


def injector_configuration(
    namespace: str, ca_bundle_pem: str, url: str = "", service: str = "",
    revision: str = "default",
) -> dict[str, Any]:
    """The configuration (by `url`, or `service` in `namespace` on port 443)."""
    client = _client(ca_bundle_pem, url, service, namespace)
    not_opted_out = {"key": INJECT, "operator": "NotIn", "values": ["false"]}
    no_injection_label = {"key": INJECTION_LABEL, "operator": "DoesNotExist"}
    no_revision_label = {"key": REVISION_LABEL, "operator": "DoesNotExist"}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {
            "name": INJECTOR_CONFIGURATION,
            "labels": {"app": "sidecar-injector", REVISION_LABEL: revision},
        },
        "webhooks": [
            _webhook(
                "namespace.sidecar-injector.istio.io", client,
                [{"key": INJECTION_LABEL, "operator": "In", "values": ["enabled"]}],
                [not_opted_out],
            ),
            _webhook(
                "rev.namespace.sidecar-injector.istio.io", client,
                [{"key": REVISION_LABEL, "operator": "In", "values": [revision]},
                 no_injection_label],
                [not_opted_out],
            ),
            _webhook(
                "object.sidecar-injector.istio.io", client,
                [no_injection_label, no_revision_label],
                [{"key": INJECT, "operator": "In", "values": ["true"]}, no_revision_label],
            ),
        ],
    }
