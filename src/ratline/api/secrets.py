"""Kubernetes `Secret`s (core v1) holding TLS credentials, as gateways use them.

A Gateway server's `credentialName` names a Secret, as in Istio. Two layouts are read:
`type: kubernetes.io/tls` with `tls.crt`, `tls.key` and optionally `ca.crt`, and Istio's
generic keys `cert`, `key` and `cacert` (any type). Values come from `data` (base64) or
`stringData` (text; it wins over `data`, as in Kubernetes).

A Secret holding TLS keys is checked when it is loaded, so a bad one is refused with its
file, name, field and reason and the last good version stays in force: every value must
be PEM; the key must match the first certificate; the certificate must be valid now (not
expired, not yet valid). A Secret with none of these keys is accepted and not read.

Secret values are never shown: `redacted` is what the admin API and the CLI print.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel, ConfigDict

TLS_TYPE = "kubernetes.io/tls"
CERT_KEYS = ("tls.crt", "cert")
KEY_KEYS = ("tls.key", "key")
CA_KEYS = ("ca.crt", "cacert")
BODY_FIELDS = frozenset({"type", "data", "stringData", "immutable"})
"""A Secret's top-level fields besides the envelope."""
REDACTED = "<redacted>"

AddProblem = Callable[[str | None, str], None]


class SecretSpec(BaseModel):
    """What Ratline reads of a Secret: its type and the TLS credential in it (PEM text)."""

    model_config = ConfigDict(frozen=True)

    type: str = "Opaque"
    cert_pem: str = ""
    key_pem: str = ""
    ca_pem: str = ""

    @property
    def has_certificate(self) -> bool:
        """Holds a certificate and its key (a server's credential)."""
        return bool(self.cert_pem and self.key_pem)

    def __repr__(self) -> str:  # never the key in a log line or a traceback
        return f"SecretSpec(type={self.type!r}, cert={bool(self.cert_pem)}, ca={bool(self.ca_pem)})"

    __str__ = __repr__


def _values(data: Mapping[str, Any], problems: AddProblem) -> dict[str, tuple[str, str]]:
    """Key → (its text, the field it came from); problems for values that cannot be read."""
    found: dict[str, tuple[str, str]] = {}
    encoded = data.get("data")
    if encoded is not None and not isinstance(encoded, dict):
        problems("data", "must be a mapping of keys to base64 values")
        encoded = None
    for key, value in (encoded or {}).items():
        where = f"data[{key}]"
        if not isinstance(value, str):
            problems(where, "must be a base64 string")
            continue
        try:
            found[str(key)] = (base64.b64decode(value, validate=True).decode(), where)
        except (binascii.Error, ValueError):
            problems(where, "is not valid base64 (use stringData for PEM text)")
    plain = data.get("stringData")
    if plain is not None and not isinstance(plain, dict):
        problems("stringData", "must be a mapping of keys to strings")
        plain = None
    for key, value in (plain or {}).items():
        where = f"stringData[{key}]"
        if not isinstance(value, str):
            problems(where, "must be a string")
            continue
        found[str(key)] = (value, where)
    return found


def _first(values: Mapping[str, tuple[str, str]], keys: tuple[str, ...]) -> tuple[str, str]:
    return next((values[k] for k in keys if k in values), ("", ""))


def _certificates(text: str, where: str, problems: AddProblem) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        problems(where, "is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
        return []
    return certs


def _check_validity(cert: x509.Certificate, where: str, problems: AddProblem) -> None:
    now = datetime.datetime.now(datetime.UTC)
    if cert.not_valid_after_utc < now:
        problems(where, f"the certificate expired on {cert.not_valid_after_utc.isoformat()}")
    elif cert.not_valid_before_utc > now:
        problems(
            where, f"the certificate is not valid before {cert.not_valid_before_utc.isoformat()}"
        )


def _public_der(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def secret_spec(data: Mapping[str, Any], problems: AddProblem) -> SecretSpec | None:
    """The Secret's TLS credential, checked; None (with problems added) when refused."""
    before: list[str] = []

    def add(field: str | None, message: str) -> None:
        before.append(message)
        problems(field, message)

    kind = data.get("type", "Opaque")
    if not isinstance(kind, str):
        add("type", "must be a string")
        return None
    values = _values(data, add)
    cert_pem, cert_at = _first(values, CERT_KEYS)
    key_pem, key_at = _first(values, KEY_KEYS)
    ca_pem, ca_at = _first(values, CA_KEYS)
    if kind == TLS_TYPE:
        for keys, text in ((CERT_KEYS, cert_pem), (KEY_KEYS, key_pem)):
            if not text:
                add(f"data[{keys[0]}]", f"required for type {TLS_TYPE}")
    if bool(cert_pem) != bool(key_pem) and kind != TLS_TYPE:
        missing = "cert" if not cert_pem else "key"
        add(f"data[{missing}]", "a certificate and its key go together; one is missing")
    if cert_pem:
        certs = _certificates(cert_pem, cert_at, add)
        if certs:
            _check_validity(certs[0], cert_at, add)
        if key_pem and certs:
            try:
                key = serialization.load_pem_private_key(key_pem.encode(), password=None)
            except (ValueError, TypeError):
                add(
                    key_at,
                    "is not a PEM private key (unencrypted, -----BEGIN ... PRIVATE KEY-----)",
                )
            else:
                if _public_der(key.public_key()) != _public_der(certs[0].public_key()):
                    add(key_at, f"the private key does not match the certificate in {cert_at}")
    if ca_pem:
        for cert in _certificates(ca_pem, ca_at, add):
            _check_validity(cert, ca_at, add)
    if before:
        return None
    return SecretSpec(type=kind, cert_pem=cert_pem, key_pem=key_pem, ca_pem=ca_pem)


def redacted(document: Mapping[str, Any]) -> dict[str, Any]:
    """A Secret document with every value of `data` and `stringData` replaced."""
    result = dict(document)
    for field in ("data", "stringData"):
        values = result.get(field)
        if isinstance(values, dict):
            result[field] = dict.fromkeys(values, REDACTED)
    return result
