"""The admission webhooks: HTTPS server and the ValidatingWebhookConfiguration.

`AdmissionWebhook` serves `POST /validate` (the decision is `ratline.kube.admission`'s)
and `POST /inject` (sidecar injection, `ratline.kube.injection`, configured by
`ratline.kube.injector_config`) with a certificate of the mesh CA.
`webhook_configuration` is the validating configuration the leader keeps in the
cluster: the kinds Ratline reads in its own API groups (Istio's and `ratline.dev`;
Kubernetes' own kinds are the API server's to validate), CREATE and UPDATE,
`failurePolicy: Fail`, and the mesh CA as `caBundle`. The API server reaches the
webhook by URL (a control plane outside the cluster) or through a Service (in one).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from ratline.api.envelope import Resource
from ratline.api.kinds import KindInfo
from ratline.kube.admission import WEBHOOK_NAME, injection_review, review
from ratline.kube.connection import APPLY_PATCH, FIELD_MANAGER, KubeConnection
from ratline.kube.crds import crd_kinds, plural
from ratline.kube.injection import InjectionParams
from ratline.kube.injector_config import INJECT_PATH
from ratline.kube.resources import MUTATING_WEBHOOK, VALIDATING_WEBHOOK, split_api_version

log = logging.getLogger("ratline.kube.webhook")

VALIDATE_PATH = "/validate"
CONFIGURATION_PREFIX = "ratline-validator-"
MAX_BODY = 4 * 1024 * 1024


def configuration_name(namespace: str) -> str:
    return f"{CONFIGURATION_PREFIX}{namespace}"


def webhook_rules(kinds: Mapping[str, KindInfo]) -> list[dict[str, Any]]:
    """One rule per API group of the kinds Ratline ships CRDs for."""
    by_group: dict[str, set[str]] = {}
    for info in crd_kinds(kinds):
        group, _version = split_api_version(info.api_versions[0])
        by_group.setdefault(group, set()).add(plural(info.kind))
    return [
        {
            "apiGroups": [group],
            "apiVersions": ["*"],
            "operations": ["CREATE", "UPDATE"],
            "resources": sorted(resources),
            "scope": "*",
        }
        for group, resources in sorted(by_group.items())
    ]


def webhook_configuration(
    namespace: str,
    kinds: Mapping[str, KindInfo],
    ca_bundle_pem: str,
    url: str = "",
    service: str = "",
) -> dict[str, Any]:
    """The ValidatingWebhookConfiguration (by `url`, or `service` in `namespace`)."""
    client: dict[str, Any] = {"caBundle": base64.b64encode(ca_bundle_pem.encode()).decode()}
    if service:
        client["service"] = {
            "name": service,
            "namespace": namespace,
            "path": VALIDATE_PATH,
            "port": 443,
        }
    else:
        client["url"] = url.rstrip("/") + VALIDATE_PATH
    return {
        "apiVersion": VALIDATING_WEBHOOK.api_version,
        "kind": VALIDATING_WEBHOOK.kind,
        "metadata": {"name": configuration_name(namespace), "labels": {"app": "ratline"}},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": client,
                "rules": webhook_rules(kinds),
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }


async def apply_configuration(connection: KubeConnection, body: Mapping[str, Any]) -> None:
    """Server-side apply of a webhook configuration, validating or mutating (Ratline owns
    its fields)."""
    kind = MUTATING_WEBHOOK if body.get("kind") == MUTATING_WEBHOOK.kind else VALIDATING_WEBHOOK
    path = kind.object_path("", str(body["metadata"]["name"]))
    await connection.request(
        "PATCH",
        path,
        query={"fieldManager": FIELD_MANAGER, "force": "true"},
        body=dict(body),
        content_type=APPLY_PATCH,
    )


class AdmissionWebhook:
    """`POST /validate` and `POST /inject`: the webhooks' application and counters."""

    def __init__(
        self,
        in_force: Callable[[], list[Resource[Any]]],
        mesh_config: Callable[[], Any],
        injection: Callable[[], InjectionParams] | None = None,
    ) -> None:
        self.in_force = in_force
        self.mesh_config = mesh_config
        self.injection = injection
        self.reviews = 0
        self.denied = 0
        self.injected = 0

    def app(self) -> web.Application:
        """The application to serve over HTTPS (the composition serves it)."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post(VALIDATE_PATH, self.validate)
        if self.injection is not None:
            app.router.add_post(INJECT_PATH, self.inject)
        return app

    async def inject(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        assert self.injection is not None
        answer = injection_review(body, self.injection())
        response = answer["response"]
        if response.get("patch"):
            self.injected += 1
        elif not response["allowed"]:
            log.info("injection refused: %s", response["status"]["message"])
        return web.json_response(answer)

    async def validate(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        answer = review(body, self.in_force, self.mesh_config)
        self.reviews += 1
        response = answer["response"]
        if not response["allowed"]:
            self.denied += 1
            log.info("admission denied: %s", response["status"]["message"])
        return web.json_response(answer)
