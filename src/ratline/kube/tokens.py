"""Certificate requests from pods, authenticated with their service-account tokens.

A pod's agent sends its projected service-account token (audience `istio-ca`, as Istio's
agent does) with its CSR. The control plane asks the API server (a TokenReview, with the
same audience) whose token it is; only `system:serviceaccount:NS:SA` is accepted, and
the CSR is then signed only for `spiffe://TRUST_DOMAIN/ns/NS/sa/SA` (the CA checks the
CSR's SAN against it). A token of another service account proves that other identity,
so its CSR for this one is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from ratline.ca.identity import Identity
from ratline.ca.service import BEARER, Refused
from ratline.kube.connection import KubeApiError, KubeConnection
from ratline.kube.resources import TOKEN_REVIEW

CA_AUDIENCE = "istio-ca"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
POD_NAME_EXTRA = "authentication.kubernetes.io/pod-name"


def review_body(token: str, audiences: Sequence[str]) -> dict[str, object]:
    return {
        "apiVersion": TOKEN_REVIEW.api_version,
        "kind": TOKEN_REVIEW.kind,
        "spec": {"token": token, "audiences": list(audiences)},
    }


def reviewed_identity(answer: dict[str, object], trust_domain: str) -> tuple[Identity, str]:
    """(identity, caller) from a TokenReview answer; Refused when it proves none."""
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict) or not status.get("authenticated"):
        reason = status.get("error") if isinstance(status, dict) else None
        raise Refused(
            401, f"the service-account token was refused: {reason or 'not authenticated'}"
        )
    user = status.get("user") or {}
    username = str(user.get("username") or "") if isinstance(user, dict) else ""
    if not username.startswith(SERVICE_ACCOUNT_PREFIX):
        raise Refused(401, f"the token is not a service account's (it is {username!r})")
    namespace, _, account = username[len(SERVICE_ACCOUNT_PREFIX) :].partition(":")
    try:
        identity = Identity(trust_domain, namespace, account)
    except ValueError as exc:
        raise Refused(401, f"the token names no usable identity: {exc}") from None
    extra = user.get("extra") if isinstance(user, dict) else None
    pods = extra.get(POD_NAME_EXTRA) if isinstance(extra, dict) else None
    caller = f"pod {namespace}/{pods[0]}" if pods else f"service account {namespace}/{account}"
    return identity, caller


class TokenReviewer:
    """The CSR endpoint's authenticator in Kubernetes (see `ratline.controlplane.ca_http`)."""

    def __init__(
        self,
        connection: KubeConnection,
        trust_domain: str,
        audiences: Sequence[str] = (CA_AUDIENCE,),
    ) -> None:
        self.connection = connection
        self.trust_domain = trust_domain
        self.audiences = tuple(audiences)

    async def __call__(self, authorization: str | None) -> tuple[Identity, str]:
        if not authorization or not authorization.startswith(BEARER):
            raise Refused(401, "no service-account token (Authorization: Bearer TOKEN)")
        token = authorization[len(BEARER) :].strip()
        try:
            answer = await self.connection.request(
                "POST", TOKEN_REVIEW.collection_path(), body=review_body(token, self.audiences)
            )
        except KubeApiError as exc:
            raise Refused(503, f"cannot check the token with the API server: {exc}") from None
        return reviewed_identity(answer, self.trust_domain)
