"""Certificate signing requests: made beside the proxy, checked by the CA. Pure functions.

A workload's CSR carries exactly one subject alternative name, its SPIFFE URI. The CA
refuses a CSR whose signature does not verify (it was not made with the key it
carries), whose names are anything but the identity the caller proved, or whose key is
weak.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID

MIN_RSA_BITS = 2048
ALLOWED_CURVES = ("secp256r1", "secp384r1")


class CsrRefused(ValueError):
    """The CA will not sign this CSR; the message says why."""


def new_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh EC P-256 key (what Istio's agent generates by default)."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_csr(key: ec.EllipticCurvePrivateKey, spiffe_uri: str) -> bytes:
    """A PEM CSR for `spiffe_uri` (empty subject, one URI SAN), signed with `key`."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_uri)]), critical=True
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def load_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    try:
        return x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CsrRefused(f"not a PEM certificate signing request: {exc}") from None


def csr_uris(csr: x509.CertificateSigningRequest) -> list[str]:
    """The URI SANs a CSR asks for (empty without a SAN extension)."""
    try:
        ext = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return []
    san: x509.SubjectAlternativeName = ext.value  # type: ignore[assignment]
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))


def check_csr(csr_pem: bytes, proven_uri: str) -> x509.CertificateSigningRequest:
    """The parsed CSR if it may be signed for `proven_uri`; CsrRefused otherwise."""
    csr = load_csr(csr_pem)
    if not csr.is_signature_valid:
        raise CsrRefused("the CSR's signature does not verify with the key it carries")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRefused(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} needed")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in ALLOWED_CURVES:
            raise CsrRefused(f"EC curve {key.curve.name} not allowed ({', '.join(ALLOWED_CURVES)})")
    else:
        raise CsrRefused(f"key type {type(key).__name__} not allowed (EC P-256/P-384 or RSA)")
    try:
        ext = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        raise CsrRefused(f"the CSR names no identity; it must ask for {proven_uri}") from None
    san: x509.SubjectAlternativeName = ext.value  # type: ignore[assignment]
    names = list(san)
    uris = csr_uris(csr)
    if len(names) != 1 or uris != [proven_uri]:
        asked = ", ".join(str(getattr(n, "value", n)) for n in names) or "nothing"
        raise CsrRefused(
            f"the CSR asks for {asked}, but the caller's credential proves only {proven_uri}"
        )
    return csr
