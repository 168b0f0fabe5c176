"""HTTP adapters of the control plane's security: the CSR endpoint (HTTPS) and the admin
API's credential check.

`POST /v1/certificates` `{"csr": PEM, "ttl_s": N}` with `Authorization: Bearer
WORKLOAD_TOKEN` → `{"cert_chain", "root_cert", "not_after"}`, or `{"errors": [...]}`
with 400/401/403. `GET /v1/trust` → `{"trust_domain", "root_cert"}` (public). Refusals
are logged with the reason. The decisions live in `ratline.ca.service`.
"""

from __future__ import annotations

import hmac
import logging
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from ratline.api.errors import ConfigMessage
from ratline.ca.identity import Identity
from ratline.ca.service import CertificateService, Refused
from ratline.controlplane.http_serving import serve

log = logging.getLogger("ratline.ca")

OPEN_PATHS = frozenset({"/healthz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Authenticator = Callable[[str | None], Awaitable[tuple[Identity, str]]]
"""`Authorization` header → (proven identity, caller name), or `Refused`."""


def _error(status: int, text: str) -> web.Response:
    return web.json_response({"errors": [ConfigMessage(text).to_json()]}, status=status)


def admin_auth_middleware(
    token: str, also_allowed: Callable[[web.Request], bool] | None = None
) -> Any:
    """Every admin path but /healthz needs `Authorization: Bearer ADMIN_TOKEN`, unless
    `also_allowed(request)` says otherwise (the dashboard's page and sessions)."""
    expected = f"Bearer {token}"

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), expected.encode()) and not (
                also_allowed is not None and also_allowed(request)
            ):
                log.warning(
                    "admin API: %s %s refused: no valid admin credential",
                    request.method,
                    request.path,
                )
                return _error(
                    401,
                    "the admin API needs the mesh's admin credential "
                    "(Authorization: Bearer $(cat DIR/.ratline/admin-token))",
                )
        return await handler(request)

    return check


def server_ssl_context(chain_pem: str, key_pem: str) -> ssl.SSLContext:
    """A TLS server context from PEM strings (written briefly to a private temp dir)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory(prefix="ratline-tls-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        cert.write_text(chain_pem)
        key.touch(mode=0o600)
        key.write_text(key_pem)
        context.load_cert_chain(cert, key)
    return context


class CertificateApi:
    """The CSR endpoint over HTTPS."""

    def __init__(
        self,
        service: CertificateService,
        chain_pem: str,
        key_pem: str,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.service = service
        self.authenticator = authenticator
        """Proves the caller's identity; None: the local mode's workload tokens."""
        self.ssl = server_ssl_context(chain_pem, key_pem)
        self.address = ""
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.router.add_post("/v1/certificates", self.certificates)
        app.router.add_get("/v1/trust", self.trust)
        return app

    async def start(self, host: str, port: int) -> int:
        self._runner, bound = await serve(self.app(), host, port, ssl_context=self.ssl)
        self.address = f"{host}:{bound}"
        return bound

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def trust(self, _req: web.Request) -> web.Response:
        return web.json_response(
            {"trust_domain": self.service.trust_domain, "root_cert": self.service.ca.root_pem}
        )

    async def certificates(self, req: web.Request) -> web.Response:
        peer = req.remote or "?"
        try:
            body: Any = await req.json()
            csr = body["csr"]
            ttl_s = float(body.get("ttl_s") or 86400.0)
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"malformed certificate request: {exc!r}")
        try:
            authorization = req.headers.get("Authorization")
            if self.authenticator is None:
                issued = self.service.sign(authorization, csr, ttl_s)
            else:
                identity, caller = await self.authenticator(authorization)
                issued = self.service.sign_for(identity, caller, csr, ttl_s)
        except Refused as exc:
            log.warning("certificate request from %s refused: %s", peer, exc.message)
            return _error(exc.status, exc.message)
        log.info("issued certificate serial %x (expires %.0f)", issued.serial, issued.not_after)
        return web.json_response(
            {
                "cert_chain": issued.chain_pem,
                "root_cert": issued.root_pem,
                "not_after": issued.not_after,
            }
        )
