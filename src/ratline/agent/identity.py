"""Workload certificates beside the proxy: key made here, CSR sent, cert rotated.

For each enrolled proxy the agent generates an EC P-256 key (which never leaves this
process), sends a CSR with the workload's token to the control plane's CSR endpoint over
TLS (trusting only the mesh roots), hands the certificate to the SDS server, and
renews it at half its lifetime, well before expiry, so Envoy always holds a valid one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from ratline.agent.sds import SecretStore
from ratline.ca.csr import make_csr, new_private_key, private_key_pem
from ratline.ca.identity import spiffe_id

log = logging.getLogger("ratline.agent.identity")

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
RENEW_FRACTION = 0.5
"""Renew when this fraction of a certificate's lifetime has passed."""


class CertificateRequestFailed(Exception):
    """The CSR endpoint could not be reached or refused; the message says which."""


def renew_at(issued_at: float, not_after: float) -> float:
    """When to renew a certificate valid from `issued_at` to `not_after` (Unix times)."""
    return issued_at + max(0.0, not_after - issued_at) * RENEW_FRACTION


class CaClient:
    """Talks HTTPS to the control plane's CSR endpoint (which may move on restart)."""

    def __init__(self, endpoint: Callable[[], str | None], trust_bundle: Path) -> None:
        self.endpoint = endpoint
        self.trust_bundle = trust_bundle
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.trust_bundle))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        address = self.endpoint()
        if not address:
            raise CertificateRequestFailed("the control plane's CSR endpoint is not up")
        url = f"https://{address}{path}"
        try:
            async with self._client().request(
                method, url, ssl=self._ssl(), timeout=aiohttp.ClientTimeout(total=10), **kwargs
            ) as resp:
                data: Any = await resp.json(content_type=None)
                if resp.status != 200:
                    errors = data.get("errors") if isinstance(data, dict) else None
                    text = "; ".join(str(e.get("text") or e) for e in errors or ()) or str(data)
                    raise CertificateRequestFailed(f"{method} {path}: {resp.status}: {text}")
                return dict(data)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, ssl.SSLError) as exc:
            raise CertificateRequestFailed(f"{method} {url}: {exc!r}") from exc

    async def trust_domain(self) -> str:
        return str((await self._call("GET", "/v1/trust"))["trust_domain"])

    async def sign(self, token: str, csr_pem: bytes, ttl_s: float) -> dict[str, Any]:
        return await self._call(
            "POST",
            "/v1/certificates",
            json={"csr": csr_pem.decode(), "ttl_s": ttl_s},
            headers={"Authorization": f"Bearer {token}"},
        )


@dataclass(frozen=True)
class Enrollment:
    node_id: str
    namespace: str
    service_account: str
    token: str


class WorkloadIdentities:
    """Keeps every enrolled proxy's certificate fresh in the SDS store."""

    def __init__(self, store: SecretStore, client: CaClient, ttl_s: float) -> None:
        self.store = store
        self.client = client
        self.ttl_s = ttl_s
        self.issued: dict[str, int] = {}
        """Certificates issued so far per node (rotations + 1), for status and tests."""
        self.expiry: dict[str, float] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def enroll(self, enrollment: Enrollment) -> None:
        """Start keeping this proxy's certificate (idempotent per node)."""
        if enrollment.node_id in self._tasks:
            return
        self._tasks[enrollment.node_id] = asyncio.create_task(
            self._keep_fresh(enrollment), name=f"certificate {enrollment.node_id}"
        )

    async def forget(self, node_id: str) -> None:
        task = self._tasks.pop(node_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.store.remove(node_id)

    async def stop(self) -> None:
        for node_id in list(self._tasks):
            await self.forget(node_id)
        await self.client.close()

    async def issue(self, e: Enrollment) -> float:
        """Get one new certificate for `e` into the store; returns when to renew it."""
        trust_domain = await self.client.trust_domain()
        key = new_private_key()
        csr = make_csr(key, spiffe_id(trust_domain, e.namespace, e.service_account))
        issued_at = time.time()
        answer = await self.client.sign(e.token, csr, self.ttl_s)
        not_after = float(answer["not_after"])
        await self.store.put(
            e.node_id, answer["cert_chain"], private_key_pem(key).decode(), answer["root_cert"]
        )
        self.issued[e.node_id] = self.issued.get(e.node_id, 0) + 1
        self.expiry[e.node_id] = not_after
        log.info(
            "%s: certificate for %s issued, valid %.0fs",
            e.node_id,
            spiffe_id(trust_domain, e.namespace, e.service_account),
            not_after - issued_at,
        )
        return renew_at(issued_at, not_after)

    async def _keep_fresh(self, e: Enrollment) -> None:
        delay = RETRY_MIN_S
        while True:
            try:
                when = await self.issue(e)
            except (CertificateRequestFailed, KeyError, ValueError) as exc:
                log.warning("%s: certificate request failed: %s; retry in %.1fs",
                            e.node_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            delay = RETRY_MIN_S
            await asyncio.sleep(max(0.0, when - time.time()))
