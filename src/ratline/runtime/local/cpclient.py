"""Async client of the control plane's admin API, for the runner (docs/admin-api.md)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp

from ratline.registry.instances import WorkloadInstance

RUNNER_NAME = "local"


class ControlPlaneUnavailable(Exception):
    """The admin API could not be reached or answered with an error."""


class AdminClient:
    """Talks to one control plane's admin API; `base_url` may change when it restarts."""

    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        """The admin credential (`DIR/.ratline/admin-token`), sent as a bearer header."""
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
            self._session = aiohttp.ClientSession(headers=headers)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self, method: str, path: str, *, timeout_s: float, **kwargs: Any
    ) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            async with self._client().request(
                method, url, timeout=aiohttp.ClientTimeout(total=timeout_s), **kwargs
            ) as resp:
                if resp.status != 200:
                    text = await resp.text()
                    raise ControlPlaneUnavailable(f"{method} {path}: {resp.status} {text[:500]}")
                data: dict[str, Any] = await resp.json(content_type=None)
                return data
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            raise ControlPlaneUnavailable(f"{method} {url}: {exc!r}") from exc

    async def healthz(self) -> bool:
        try:
            await self._request("GET", "/healthz", timeout_s=2.0)
        except ControlPlaneUnavailable:
            return False
        return True

    async def resources(
        self, *, kind: str | None = None, wait: str | None = None, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """`GET /v1/resources`; with `wait`, long-polls until the config version differs."""
        params: dict[str, str] = {}
        if kind:
            params["kind"] = kind
        if wait is not None:
            params["wait"] = wait
            params["timeout"] = str(int(timeout_s))
        return await self._request(
            "GET", "/v1/resources", params=params, timeout_s=timeout_s + 10.0
        )

    async def put_instances(self, instances: Iterable[WorkloadInstance]) -> int:
        """Replace every instance this runner reported before; the count accepted."""
        body = {"runner": RUNNER_NAME, "instances": [i.to_json() for i in instances]}
        data = await self._request("PUT", "/v1/instances", json=body, timeout_s=10.0)
        return int(data.get("count", 0))

    async def proxy_status(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """`GET /v1/proxy-status`: every proxy's sync state, NACKs included."""
        return await self._request("GET", "/v1/proxy-status", timeout_s=timeout_s)

    async def config_dump(self, node: str, type_name: str) -> dict[str, Any]:
        """`GET /v1/config-dump`: what the control plane serves one proxy of one type."""
        return await self._request(
            "GET", "/v1/config-dump", params={"node": node, "type": type_name}, timeout_s=10.0
        )
