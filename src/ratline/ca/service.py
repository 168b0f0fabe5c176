"""The CSR service's decision, sans-IO: credential → proven identity → signed certificate.

The HTTP adapter (`ratline.controlplane.ca_http`) only moves bytes; every refusal is
decided here and raised as `Refused` with the status to answer and a message for the
caller and the log. Nothing is issued unless every check passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratline.ca.authority import CertificateAuthority, IssuedCertificate
from ratline.ca.csr import CsrRefused
from ratline.ca.identity import Identity
from ratline.ca.tokens import TokenRefused, verify_token

BEARER = "Bearer "


class Refused(Exception):
    """A certificate request refused: `status` (401 credential, 403 identity, 400 input)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class CertificateService:
    """Signs CSRs for the identity a workload token proves."""

    ca: CertificateAuthority
    token_key: bytes
    trust_domain: str
    max_ttl_s: float = 90 * 24 * 3600.0

    def prove(self, authorization: str | None) -> tuple[Identity, str]:
        """(identity, instance) proven by an `Authorization: Bearer TOKEN` header."""
        if not authorization or not authorization.startswith(BEARER):
            raise Refused(401, "no workload credential (Authorization: Bearer TOKEN)")
        try:
            claims = verify_token(self.token_key, authorization[len(BEARER) :].strip())
        except TokenRefused as exc:
            raise Refused(401, f"workload credential refused: {exc}") from None
        try:
            identity = Identity(self.trust_domain, claims["ns"], claims["sa"])
        except ValueError as exc:
            raise Refused(401, f"workload credential refused: {exc}") from None
        return identity, claims["instance"]

    def sign(self, authorization: str | None, csr_pem: str, ttl_s: float) -> IssuedCertificate:
        """Verify the credential, then sign the CSR only for the identity it proves."""
        identity, instance = self.prove(authorization)
        return self.sign_for(identity, instance, csr_pem, ttl_s)

    def sign_for(
        self, identity: Identity, instance: str, csr_pem: str, ttl_s: float
    ) -> IssuedCertificate:
        """Sign the CSR only for `identity`, proven by another authenticator (a Kubernetes
        service-account token checked with a TokenReview); `instance` names the caller."""
        if not isinstance(csr_pem, str) or not csr_pem.strip():
            raise Refused(400, "csr: a PEM certificate signing request is required")
        try:
            return self.ca.sign_csr(csr_pem.encode(), identity, ttl_s, self.max_ttl_s)
        except CsrRefused as exc:
            raise Refused(403, f"CSR from instance {instance} refused: {exc}") from None
