"""The mesh CA: self-created and plugged-in keys, file permissions, what it signs."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from ratline.ca.authority import CaError, CertificateAuthority, ca_certificate, self_signed_root
from ratline.ca.csr import CsrRefused, make_csr, new_private_key
from ratline.ca.files import InsecureFileError
from ratline.ca.identity import Identity

ALICE = Identity("cluster.local", "default", "alice")


def _uris(cert: x509.Certificate) -> list[str]:
    ext = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
    return list(ext.get_values_for_type(x509.UniformResourceIdentifier))  # type: ignore[attr-defined]


def test_self_created_ca_keeps_its_key_0600_and_reuses_it(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", None, "cluster.local")
    key_file = tmp_path / "ca" / "root-key.pem"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    again = CertificateAuthority.load_or_create(tmp_path / "ca", None, "cluster.local")
    assert again.root_pem == ca.root_pem


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_key_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    CertificateAuthority.load_or_create(tmp_path / "ca", None, "cluster.local")
    key_file = tmp_path / "ca" / "root-key.pem"
    os.chmod(key_file, mode)
    with pytest.raises(InsecureFileError, match="chmod 600"):
        CertificateAuthority.load_or_create(tmp_path / "ca", None, "cluster.local")


def test_signed_leaf_has_only_the_proven_spiffe_id_and_chains_to_root(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", None, "cluster.local")
    key = new_private_key()
    issued = ca.sign_csr(make_csr(key, ALICE.uri), ALICE, ttl_s=60)
    leaf, *rest = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    root = x509.load_pem_x509_certificate(issued.root_pem.encode())
    assert _uris(leaf) == ["spiffe://cluster.local/ns/default/sa/alice"]
    assert rest == []
    leaf.verify_directly_issued_by(root)
    lifetime = leaf.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(seconds=50) < lifetime <= datetime.timedelta(seconds=61)


def test_csr_for_someone_else_is_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", None, "cluster.local")
    csr = make_csr(new_private_key(), "spiffe://cluster.local/ns/default/sa/bob")
    with pytest.raises(CsrRefused, match=r"proves only spiffe://cluster\.local/ns/default/sa/alice"):
        ca.sign_csr(csr, ALICE, ttl_s=60)


def _write_plugged(folder: Path, key_mode: int = 0o600) -> x509.Certificate:
    """An Istio-style cacerts folder: root → intermediate (the signing CA)."""
    folder.mkdir()
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = self_signed_root(root_key, "example.org")
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")])
    inter = ca_certificate(inter_key, inter_name, root_key, root.subject,
                           datetime.timedelta(days=30))
    pem = serialization.Encoding.PEM
    (folder / "root-cert.pem").write_bytes(root.public_bytes(pem))
    (folder / "ca-cert.pem").write_bytes(inter.public_bytes(pem))
    (folder / "cert-chain.pem").write_bytes(inter.public_bytes(pem) + root.public_bytes(pem))
    key_path = folder / "ca-key.pem"
    key_path.write_bytes(inter_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key_path, key_mode)
    return root


def test_plugged_in_ca_signs_with_the_intermediate(tmp_path: Path) -> None:
    root = _write_plugged(tmp_path / "cacerts")
    ca = CertificateAuthority.load_or_create(tmp_path / "ca", tmp_path / "cacerts", "x")
    assert ca.origin.startswith("plugged in")
    issued = ca.sign_csr(make_csr(new_private_key(), ALICE.uri), ALICE, ttl_s=3600)
    leaf, inter = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    leaf.verify_directly_issued_by(inter)
    inter.verify_directly_issued_by(root)
    assert issued.root_pem.encode() == root.public_bytes(serialization.Encoding.PEM)
    assert not (tmp_path / "ca" / "root-key.pem").exists()


def test_plugged_in_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    _write_plugged(tmp_path / "cacerts", key_mode=0o644)
    with pytest.raises(InsecureFileError):
        CertificateAuthority.load_or_create(tmp_path / "ca", tmp_path / "cacerts", "x")


def test_plugged_in_folder_missing_files_says_which(tmp_path: Path) -> None:
    _write_plugged(tmp_path / "cacerts")
    (tmp_path / "cacerts" / "cert-chain.pem").unlink()
    with pytest.raises(CaError, match=r"missing cert-chain\.pem"):
        CertificateAuthority.load_or_create(tmp_path / "ca", tmp_path / "cacerts", "x")


def test_plugged_in_key_of_another_cert_is_refused(tmp_path: Path) -> None:
    _write_plugged(tmp_path / "cacerts")
    other = ec.generate_private_key(ec.SECP256R1())
    key_path = tmp_path / "cacerts" / "ca-key.pem"
    key_path.write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()))
    with pytest.raises(CaError, match=r"not the key of ca-cert\.pem"):
        CertificateAuthority.load_or_create(tmp_path / "ca", tmp_path / "cacerts", "x")
