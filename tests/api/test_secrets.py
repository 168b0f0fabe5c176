"""TLS Secrets: both layouts read, bad ones refused with file, resource, field and reason,
values redacted."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ratline.api.envelope import ResourceKey
from ratline.api.loader import load_text
from ratline.api.secrets import redacted

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


def _pair(
    start: datetime.datetime = NOW - DAY, end: datetime.datetime = NOW + DAY
) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "a.example.com")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(1)
        .not_valid_before(start).not_valid_after(end).sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _secret(body: str, kind: str = "kubernetes.io/tls") -> str:
    return (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: cred, namespace: istio-system}\n"
        f"type: {kind}\n{body}"
    )


def test_tls_and_generic_layouts_are_read() -> None:
    cert, key = _pair()
    ca, _ = _pair()
    tls = _secret(f"data:\n  tls.crt: {_b64(cert)}\n  tls.key: {_b64(key)}\n  ca.crt: {_b64(ca)}\n")
    loaded = load_text(tls, "s.yaml")
    assert loaded.messages == []
    spec = loaded.resources[0].spec
    assert (spec.cert_pem, spec.key_pem, spec.ca_pem) == (cert, key, ca)
    assert key not in repr(spec) and key not in str(loaded.resources[0].spec)
    generic = _secret(
        f"stringData:\n  cert: {json_str(cert)}\n  key: {json_str(key)}\n", kind="Opaque"
    )
    loaded = load_text(generic, "g.yaml")
    assert loaded.messages == [] and loaded.resources[0].spec.has_certificate
    other = _secret("stringData: {password: hunter2}\n", kind="Opaque")
    assert load_text(other, "o.yaml").messages == []


def json_str(text: str) -> str:
    import json

    return json.dumps(text)


@pytest.mark.parametrize(
    ("which", "field", "reason"),
    [
        ("mismatch", "data[tls.key]", "the private key does not match the certificate"),
        ("expired", "data[tls.crt]", "the certificate expired on"),
        ("future", "data[tls.crt]", "the certificate is not valid before"),
        ("notpem", "data[tls.crt]", "is not a PEM certificate"),
        ("badkey", "data[tls.key]", "is not a PEM private key"),
        ("nokey", "data[tls.key]", "required for type kubernetes.io/tls"),
        ("base64", "data[tls.crt]", "is not valid base64"),
    ],
)
def test_bad_secrets_are_refused_naming_file_resource_field_and_reason(
    which: str, field: str, reason: str
) -> None:
    cert, key = _pair()
    values = {"tls.crt": _b64(cert), "tls.key": _b64(key)}
    if which == "mismatch":
        values["tls.key"] = _b64(_pair()[1])
    elif which == "expired":
        values["tls.crt"] = _b64(_pair(NOW - 3 * DAY, NOW - DAY)[0])
    elif which == "future":
        values["tls.crt"] = _b64(_pair(NOW + DAY, NOW + 3 * DAY)[0])
    elif which == "notpem":
        values["tls.crt"] = _b64("hello")
    elif which == "badkey":
        values["tls.key"] = _b64("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    elif which == "nokey":
        del values["tls.key"]
    elif which == "base64":
        values["tls.crt"] = "not base64!"
    body = "data:\n" + "".join(f"  {k}: {v!r}\n" for k, v in values.items())
    loaded = load_text(_secret(body), "bad.yaml")
    messages = [m for m in loaded.messages if m.field == field]
    assert messages, [str(m) for m in loaded.messages]
    message = messages[0]
    assert message.source.file == "bad.yaml"
    assert message.resource == ResourceKey("Secret", "istio-system", "cred")
    assert reason in message.message
    assert loaded.resources == []


def test_redacted_hides_every_value() -> None:
    doc = {"kind": "Secret", "data": {"tls.key": "c2VjcmV0"}, "stringData": {"key": "secret"}}
    shown = redacted(doc)
    assert "secret" not in repr(shown) and "c2VjcmV0" not in repr(shown)
    assert shown["data"] == {"tls.key": "<redacted>"}
