"""JWTs the tests sign themselves (RS256 with `cryptography`), and their JWKS."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    """An RSA key with a key id: signs tokens, publishes its public half as a JWKS."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwk(self) -> dict[str, str]:
        numbers = self._key.public_key().public_numbers()
        return {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid,
                "n": _int(numbers.n), "e": _int(numbers.e)}

    def jwks(self) -> str:
        return json.dumps({"keys": [self.jwk()]})

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or self.kid}
        signing_input = (
            _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64(signature)

    def token(self, issuer: str, subject: str = "alice", ttl: float = 3600,
              **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": issuer, "sub": subject, "iat": now, "exp": now + int(ttl), **claims}
        return self.sign(body)
