"""Per-workload credentials of local mode: tokens that prove which identity asks for a cert.

The role of Kubernetes service-account tokens: the runner (which starts the workload and
so knows its namespace and service account) mints one token per instance, signed with
HMAC-SHA256 under a key only the runner and the control plane read
(`DIR/.ratline/ca/token-key`, mode 0600). The control plane signs a CSR only for the
identity a valid token names. Pure functions; the key is bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets

TOKEN_PREFIX = "rlt1"
TOKEN_KEY_BYTES = 32


class TokenRefused(ValueError):
    """A token is malformed, forged (bad signature) or names no usable identity."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_token_key() -> bytes:
    return secrets.token_bytes(TOKEN_KEY_BYTES)


def _mac(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, f"{TOKEN_PREFIX}.{payload}".encode(), hashlib.sha256).digest())


def mint_token(key: bytes, *, namespace: str, service_account: str, instance: str) -> str:
    """A token proving `namespace`/`service_account` for one instance (random nonce)."""
    claims = {
        "ns": namespace,
        "sa": service_account,
        "instance": instance,
        "nonce": secrets.token_hex(8),
    }
    payload = _b64(json.dumps(claims, sort_keys=True).encode())
    return f"{TOKEN_PREFIX}.{payload}.{_mac(key, payload)}"


def verify_token(key: bytes, token: str) -> dict[str, str]:
    """The claims (`ns`, `sa`, `instance`) of a genuine token; TokenRefused otherwise."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise TokenRefused("the token is not a Ratline workload token")
    payload, mac = parts[1], parts[2]
    if not hmac.compare_digest(_mac(key, payload), mac):
        raise TokenRefused("the token's signature is not valid (forged or from another mesh)")
    try:
        claims = json.loads(_unb64(payload))
    except ValueError as exc:
        raise TokenRefused(f"the token's claims are unreadable: {exc}") from None
    if not isinstance(claims, dict) or not all(
        isinstance(claims.get(k), str) and claims.get(k) for k in ("ns", "sa", "instance")
    ):
        raise TokenRefused("the token names no namespace, service account and instance")
    return {k: str(claims[k]) for k in ("ns", "sa", "instance")}
