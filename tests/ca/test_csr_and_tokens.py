"""CSR checks and workload tokens: the refusals that keep one workload from another's identity."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from ratline.ca.authority import CertificateAuthority
from ratline.ca.csr import CsrRefused, check_csr, make_csr, new_private_key
from ratline.ca.identity import Identity, parse_spiffe_id, spiffe_id
from ratline.ca.service import CertificateService, Refused
from ratline.ca.tokens import TokenRefused, mint_token, new_token_key, verify_token

ALICE = "spiffe://cluster.local/ns/default/sa/alice"


def _tampered_signature(csr_pem: bytes) -> bytes:
    der = bytearray(x509.load_pem_x509_csr(csr_pem).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0xFF  # inside the signature BIT STRING at the end
    csr = x509.load_der_x509_csr(bytes(der))
    return csr.public_bytes(serialization.Encoding.PEM)


def test_good_csr_passes() -> None:
    check_csr(make_csr(new_private_key(), ALICE), ALICE)


def test_csr_with_a_bad_signature_is_refused() -> None:
    bad = _tampered_signature(make_csr(new_private_key(), ALICE))
    with pytest.raises(CsrRefused, match="signature does not verify"):
        check_csr(bad, ALICE)


def test_csr_with_extra_names_is_refused() -> None:
    key = new_private_key()
    names = [x509.UniformResourceIdentifier(ALICE), x509.DNSName("evil.example")]
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(CsrRefused, match=r"evil\.example"):
        check_csr(csr, ALICE)


def test_csr_without_names_or_weak_key_or_garbage_is_refused() -> None:
    key = new_private_key()
    no_san = (
        x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
        .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(CsrRefused, match="names no identity"):
        check_csr(no_san, ALICE)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CsrRefused, match="1024 bits"):
        check_csr(make_csr(weak, ALICE), ALICE)  # type: ignore[arg-type]
    small_curve = ec.generate_private_key(ec.SECP224R1())
    with pytest.raises(CsrRefused, match="secp224r1"):
        check_csr(make_csr(small_curve, ALICE), ALICE)
    with pytest.raises(CsrRefused, match="not a PEM"):
        check_csr(b"hello", ALICE)


def test_tokens_verify_and_forgeries_do_not() -> None:
    key = new_token_key()
    token = mint_token(key, namespace="default", service_account="alice", instance="a-0")
    assert verify_token(key, token) == {"ns": "default", "sa": "alice", "instance": "a-0"}
    with pytest.raises(TokenRefused, match="signature"):
        verify_token(new_token_key(), token)
    prefix, payload, mac = token.split(".")
    forged_payload = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB")
    with pytest.raises(TokenRefused, match="signature"):
        verify_token(key, f"{prefix}.{forged_payload}.{mac}")
    with pytest.raises(TokenRefused, match="not a Ratline"):
        verify_token(key, "eyJhbGciOi.x.y.z")


@given(st.text(max_size=200))
def test_random_tokens_never_verify(text: str) -> None:
    with pytest.raises(TokenRefused):
        verify_token(b"k" * 32, text)


def test_spiffe_ids_round_trip() -> None:
    assert parse_spiffe_id(spiffe_id("td", "ns1", "sa1")) == Identity("td", "ns1", "sa1")
    with pytest.raises(ValueError):
        parse_spiffe_id("spiffe://td/ns/a/sb/b")
    with pytest.raises(ValueError):
        Identity("td", "a/b", "c")


@pytest.fixture
def service(tmp_path: Path) -> CertificateService:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", None, "cluster.local")
    return CertificateService(ca, new_token_key(), "cluster.local")


def _bearer(service: CertificateService, sa: str = "alice") -> str:
    token = mint_token(service.token_key, namespace="default", service_account=sa, instance="i")
    return f"Bearer {token}"


def test_service_signs_the_proven_identity(service: CertificateService) -> None:
    issued = service.sign(_bearer(service), make_csr(new_private_key(), ALICE).decode(), 60)
    assert ALICE in x509.load_pem_x509_certificates(issued.chain_pem.encode())[0].extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.UniformResourceIdentifier)


@pytest.mark.parametrize(
    ("auth", "csr_for", "status", "text"),
    [
        (None, ALICE, 401, "no workload credential"),
        ("Bearer rlt1.e30.forged", ALICE, 401, "signature"),
        ("alice", ALICE, 401, "no workload credential"),
        ("GOOD", "spiffe://cluster.local/ns/default/sa/bob", 403, "proves only"),
        ("GOOD", "spiffe://other.domain/ns/default/sa/alice", 403, "proves only"),
    ],
)
def test_service_refusals(
    service: CertificateService, auth: str | None, csr_for: str, status: int, text: str
) -> None:
    header = _bearer(service) if auth == "GOOD" else auth
    with pytest.raises(Refused, match=text) as info:
        service.sign(header, make_csr(new_private_key(), csr_for).decode(), 60)
    assert info.value.status == status
