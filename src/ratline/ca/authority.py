"""The mesh certificate authority: its keys (self-created or plugged in) and what it signs.

Self-created (the default): on first start a root key and self-signed root certificate
are written to `DIR/.ratline/ca/` (key mode 0600) and reused afterwards. Plugged in (as
Istio's `cacerts`): a folder holding `ca-cert.pem` + `ca-key.pem` (the signing,
intermediate CA), `root-cert.pem` (the trust anchor) and `cert-chain.pem` (signing cert
up to the root). Either way a key file others can read is refused.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ratline.ca.csr import check_csr
from ratline.ca.files import make_private_dir, read_private, write_private
from ratline.ca.identity import Identity

ROOT_KEY = "root-key.pem"
ROOT_CERT = "root-cert.pem"
PLUGGED_FILES = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")
ROOT_VALIDITY = datetime.timedelta(days=3650)
CLOCK_SKEW = datetime.timedelta(seconds=60)
MIN_TTL_S = 10.0
"""Shortest certificate lifetime the CA issues (tests use one minute)."""

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class CaError(RuntimeError):
    """The CA cannot be set up from what is on disk; the message says what to fix."""


@dataclass(frozen=True)
class IssuedCertificate:
    """A signed leaf: its chain (leaf first, PEM), the trust bundle, and its expiry."""

    chain_pem: str
    root_pem: str
    not_after: float
    """Unix time."""
    serial: int


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise CaError(f"{path}: not readable PEM certificates: {exc}") from None


def _load_key(path: Path) -> SigningKey:
    data = read_private(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CaError(f"{path}: not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise CaError(f"{path}: only EC and RSA CA keys are supported")
    return key


class CertificateAuthority:
    """Signs workload certificates with a signing cert that chains to the mesh root."""

    def __init__(
        self,
        signing_cert: x509.Certificate,
        signing_key: SigningKey,
        chain: Sequence[x509.Certificate],
        roots: Sequence[x509.Certificate],
        origin: str,
    ) -> None:
        self.signing_cert = signing_cert
        self.signing_key = signing_key
        self.chain = tuple(chain)
        """Signing cert up to (not including) the root; empty when the root signs."""
        self.roots = tuple(roots)
        self.origin = origin
        """Where the keys came from, for logs: `self-created in …` or `plugged in from …`."""

    @property
    def root_pem(self) -> str:
        return "".join(_pem(c) for c in self.roots)

    # ---- loading -----------------------------------------------------------------------

    @classmethod
    def load_or_create(
        cls, state_ca_dir: Path, plugged_dir: Path | None, trust_domain: str
    ) -> CertificateAuthority:
        """The plugged-in CA if `plugged_dir` holds one, else the self-created one."""
        if plugged_dir is not None and plugged_dir.is_dir():
            return cls.load_plugged(plugged_dir)
        return cls.load_self_created(state_ca_dir, trust_domain)

    @classmethod
    def load_plugged(cls, folder: Path) -> CertificateAuthority:
        missing = [name for name in PLUGGED_FILES if not (folder / name).is_file()]
        if missing:
            raise CaError(
                f"{folder}: a plugged-in CA needs {', '.join(PLUGGED_FILES)}; "
                f"missing {', '.join(missing)}"
            )
        key = _load_key(folder / "ca-key.pem")
        signing = _load_certs(folder / "ca-cert.pem")[0]
        roots = _load_certs(folder / "root-cert.pem")
        chain = [
            c for c in _load_certs(folder / "cert-chain.pem") if c not in roots
        ] or [signing]
        if chain[0] != signing:
            chain.insert(0, signing)
        if _spki(signing.public_key()) != _spki(key.public_key()):
            raise CaError(f"{folder}: ca-key.pem is not the key of ca-cert.pem")
        _check_ca_cert(signing, folder / "ca-cert.pem")
        _check_chain(chain, roots, folder)
        return cls(signing, key, chain, roots, f"plugged in from {folder}")

    @classmethod
    def load_self_created(cls, folder: Path, trust_domain: str) -> CertificateAuthority:
        key_path, cert_path = folder / ROOT_KEY, folder / ROOT_CERT
        if key_path.exists() and cert_path.exists():
            key = _load_key(key_path)
            root = _load_certs(cert_path)[0]
            return cls(root, key, (), (root,), f"self-created in {folder}")
        make_private_dir(folder)
        new_key = ec.generate_private_key(ec.SECP256R1())
        root = self_signed_root(new_key, trust_domain)
        write_private(
            key_path,
            new_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_text(_pem(root))
        return cls(root, new_key, (), (root,), f"self-created in {folder} (new)")

    # ---- signing -----------------------------------------------------------------------

    def sign_csr(
        self, csr_pem: bytes, proven: Identity, ttl_s: float, max_ttl_s: float | None = None
    ) -> IssuedCertificate:
        """Sign a workload CSR for the identity its caller proved (CsrRefused otherwise)."""
        csr = check_csr(csr_pem, proven.uri)
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey)
        san = x509.SubjectAlternativeName([x509.UniformResourceIdentifier(proven.uri)])
        ttl = max(MIN_TTL_S, min(ttl_s, max_ttl_s) if max_ttl_s else ttl_s)
        return self._issue(public_key, san, ttl)

    def issue_server(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        identity: Identity,
        dns_names: Sequence[str],
        ip_addresses: Sequence[str],
        ttl_s: float,
    ) -> IssuedCertificate:
        """The control plane's own serving certificate (SPIFFE URI, DNS and IP names)."""
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(identity.uri)]
        names += [x509.DNSName(d) for d in dns_names]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        return self._issue(public_key, x509.SubjectAlternativeName(names), ttl_s)

    def _issue(
        self,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        san: x509.SubjectAlternativeName,
        ttl_s: float,
    ) -> IssuedCertificate:
        now = _now()
        wanted = now + datetime.timedelta(seconds=ttl_s)
        not_after = min(wanted, self.signing_cert.not_valid_after_utc)
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.signing_cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(san, critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.signing_key.public_key()),
                critical=False,
            )
        )
        cert = builder.sign(self.signing_key, hashes.SHA256())
        chain = "".join(_pem(c) for c in (cert, *self.chain))
        return IssuedCertificate(chain, self.root_pem, not_after.timestamp(), serial)


def self_signed_root(key: ec.EllipticCurvePrivateKey, trust_domain: str) -> x509.Certificate:
    """A 10-year self-signed root for the mesh (also used by tests to make plugged CAs)."""
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
            x509.NameAttribute(NameOID.COMMON_NAME, "Ratline mesh root CA"),
        ]
    )
    return ca_certificate(key, name, key, name, ROOT_VALIDITY)


def ca_certificate(
    key: SigningKey,
    subject: x509.Name,
    issuer_key: SigningKey,
    issuer: x509.Name,
    validity: datetime.timedelta,
) -> x509.Certificate:
    """A CA certificate for `key`, signed by `issuer_key`."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _spki(public_key: Any) -> bytes:
    return bytes(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _check_ca_cert(cert: x509.Certificate, path: Path) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError(f"{path}: not a CA certificate (basicConstraints CA:TRUE needed)")


def _check_chain(
    chain: Sequence[x509.Certificate], roots: Sequence[x509.Certificate], folder: Path
) -> None:
    """Each cert of the chain is issued by the next; the last by one of the roots."""
    for child, parent in zip(chain, [*chain[1:], None], strict=True):
        issuers = [parent] if parent is not None else list(roots)
        if not any(_signed_by(child, issuer) for issuer in issuers):
            raise CaError(
                f"{folder}: {child.subject.rfc4514_string() or 'a certificate'} in "
                f"cert-chain.pem does not chain up to root-cert.pem"
            )


def _signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, Exception):
        return child == issuer and child.issuer == child.subject
    return True
