"""The sidecar injector's MutatingWebhookConfiguration `ratline-sidecar-injector`.

Istio's selection, with Istio's labels: pods created in a namespace labelled
`istio-injection=enabled` (unless the pod says `sidecar.istio.io/inject: "false"`), or
`istio.io/rev=default` (without `istio-injection`), or pods labelled
`sidecar.istio.io/inject: "true"` in a namespace with neither label. The control plane
serves `POST /inject` on its webhook port; `failurePolicy: Fail`, as Istio's: while the
injector is away, pods that would be injected are not created rather than created
without a sidecar. The install (chart, `ratline install`) creates it without a
`caBundle`; the control plane's leader fills that in with the mesh CA, as it does for
the validating webhook.
"""

from __future__ import annotations

import base64
from typing import Any

from ratline.kube.resources import ResourceType

MUTATING_WEBHOOK = ResourceType(
    "admissionregistration.k8s.io",
    "v1",
    "MutatingWebhookConfiguration",
    "mutatingwebhookconfigurations",
    namespaced=False,
)
CONFIGURATION_NAME = "ratline-sidecar-injector"
INJECT_PATH = "/inject"
REVISION = "default"
INJECT_LABEL = "sidecar.istio.io/inject"
NAMESPACE_LABEL = "istio-injection"
REVISION_LABEL = "istio.io/rev"


def _selector(*expressions: tuple[str, str, list[str] | None]) -> dict[str, Any]:
    exprs = []
    for key, operator, values in expressions:
        expr: dict[str, Any] = {"key": key, "operator": operator}
        if values is not None:
            expr["values"] = values
        exprs.append(expr)
    return {"matchExpressions": exprs}


def _webhook(
    name: str, client: dict[str, Any], namespaces: dict[str, Any], objects: dict[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "*",
            }
        ],
        "namespaceSelector": namespaces,
        "objectSelector": objects,
        "failurePolicy": "Fail",
        "reinvocationPolicy": "Never",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
    }


def injector_configuration(
    namespace: str, ca_bundle_pem: str = "", url: str = "", service: str = ""
) -> dict[str, Any]:
    """The configuration (by full `url`, else `service` in `namespace`, port 443)."""
    client: dict[str, Any] = {}
    if url:
        client["url"] = url
    else:
        client["service"] = {
            "name": service,
            "namespace": namespace,
            "path": INJECT_PATH,
            "port": 443,
        }
    if ca_bundle_pem:
        client["caBundle"] = base64.b64encode(ca_bundle_pem.encode()).decode()
    not_opted_out = _selector((INJECT_LABEL, "NotIn", ["false"]))
    return {
        "apiVersion": MUTATING_WEBHOOK.api_version,
        "kind": MUTATING_WEBHOOK.kind,
        "metadata": {"name": CONFIGURATION_NAME, "labels": {"app": "ratline"}},
        "webhooks": [
            _webhook(
                "namespace.sidecar-injector.ratline.dev",
                client,
                _selector((NAMESPACE_LABEL, "In", ["enabled"])),
                not_opted_out,
            ),
            _webhook(
                "rev.namespace.sidecar-injector.ratline.dev",
                client,
                _selector(
                    (REVISION_LABEL, "In", [REVISION]), (NAMESPACE_LABEL, "DoesNotExist", None)
                ),
                not_opted_out,
            ),
            _webhook(
                "object.sidecar-injector.ratline.dev",
                client,
                _selector(
                    (NAMESPACE_LABEL, "DoesNotExist", None), (REVISION_LABEL, "DoesNotExist", None)
                ),
                _selector((INJECT_LABEL, "In", ["true"])),
            ),
        ],
    }
