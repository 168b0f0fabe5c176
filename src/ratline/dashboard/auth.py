"""Who may read the dashboard: one-time login codes and signed session cookies.

The admin token stays the one credential. `ratline dashboard` (holding the token) asks
for a login code, good once and for `CODE_TTL_S`, and opens `/ui/login?code=…`; the page
asks for the token itself when opened without one. Either way the browser gets a session
cookie: `NONCE.EXPIRY.HMAC` keyed by the admin token (HttpOnly, SameSite=Strict), so it
outlives a control plane restart, dies with a new token, and needs no state. A session
reads: it is accepted for GET requests only, the dashboard being read-only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

COOKIE = "ratline_session"
CODE_TTL_S = 120.0
SESSION_TTL_S = 12 * 3600.0


class DashboardAuth:
    def __init__(self, admin_token: str | None, clock: Callable[[], float] = time.time) -> None:
        self._key = (admin_token or "").encode()
        self.open = admin_token is None
        """No admin token at all (tests of the API alone): everything is readable."""
        self._clock = clock
        self._codes: dict[str, float] = {}

    # ---- one-time login codes ----------------------------------------------------------

    def new_code(self) -> str:
        now = self._clock()
        self._codes = {c: exp for c, exp in self._codes.items() if exp > now}
        code = secrets.token_urlsafe(24)
        self._codes[code] = now + CODE_TTL_S
        return code

    def redeem(self, code: str) -> bool:
        """Whether `code` is a live login code; it is spent either way."""
        expires = self._codes.pop(code, None)
        return expires is not None and expires > self._clock()

    def token_ok(self, token: str) -> bool:
        return bool(self._key) and hmac.compare_digest(token.strip().encode(), self._key)

    # ---- sessions ----------------------------------------------------------------------

    def _mac(self, payload: str) -> str:
        return hmac.new(self._key, f"dashboard-session:{payload}".encode(),
                        hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        payload = f"{secrets.token_hex(8)}.{int(self._clock() + SESSION_TTL_S)}"
        return f"{payload}.{self._mac(payload)}"

    def session_ok(self, cookie: str | None) -> bool:
        if self.open:
            return True
        if not cookie or cookie.count(".") != 2:
            return False
        nonce, expiry, mac = cookie.split(".")
        payload = f"{nonce}.{expiry}"
        if not hmac.compare_digest(mac, self._mac(payload)):
            return False
        try:
            return float(expiry) > self._clock()
        except ValueError:
            return False
