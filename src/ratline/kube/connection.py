"""The connection to a Kubernetes API server, and the request shapes Ratline uses.

Credentials come from a kubeconfig file (`--kubeconfig`) or, in a pod, from the mounted
service-account token (in-cluster config); kubernetes_asyncio's `ApiClient` carries them
(TLS, bearer tokens, exec plugins, token refresh). Ratline reads answers as JSON dicts
rather than the client's generated models: the informers hold thousands of objects and
turn them into Ratline's own types at once, and a generic path serves every kind, the
custom resources included.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
FIELD_MANAGER = "ratline"
"""The field manager of Ratline's writes (server-side apply, status patches)."""

REQUEST_TIMEOUT_S = 30.0


class KubeApiError(Exception):
    """The API server answered with an error, or could not be reached (`status` 0)."""

    def __init__(self, status: int, message: str, reason: str = "", body: Any = None) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.message = message
        self.reason = reason
        """The `Status` object's `reason` (`NotFound`, `Conflict`, `Expired`, …)."""
        self.body = body

    @classmethod
    def from_answer(cls, status: int, text: str) -> KubeApiError:
        try:
            body = json.loads(text)
        except ValueError:
            return cls(status, text.strip()[:500] or f"HTTP {status}")
        if isinstance(body, dict):
            return cls(
                status, str(body.get("message") or text[:500]), str(body.get("reason", "")), body
            )
        return cls(status, text[:500], body=body)


Query = Sequence[tuple[str, str]] | Mapping[str, str] | None


def _query(query: Query) -> list[tuple[str, str]]:
    if query is None:
        return []
    items = query.items() if isinstance(query, Mapping) else query
    return [(str(k), str(v)) for k, v in items]


class KubeConnection:
    """One API server, through one kubernetes_asyncio `ApiClient`."""

    def __init__(self, api: k8s_client.ApiClient, description: str) -> None:
        self.api = api
        self.description = description
        """Where it points, for messages: `https://127.0.0.1:6443 (kubeconfig FILE)`."""

    @classmethod
    async def from_kubeconfig(cls, path: Path | None, context: str | None = None) -> KubeConnection:
        """From a kubeconfig file (None: `$KUBECONFIG` or `~/.kube/config`, as kubectl)."""
        configuration = k8s_client.Configuration()
        await k8s_config.load_kube_config(
            config_file=str(path) if path else None,
            context=context,
            client_configuration=configuration,
        )
        where = f"kubeconfig {path}" if path else "the default kubeconfig"
        return cls(k8s_client.ApiClient(configuration), f"{configuration.host} ({where})")

    @classmethod
    def in_cluster(cls, account_dir: Path) -> KubeConnection:
        """From the pod's service-account directory (`token`, `ca.crt`; the token is
        re-read as the kubelet rotates it) and `KUBERNETES_SERVICE_HOST`/`_PORT`."""
        configuration = k8s_client.Configuration()
        k8s_config.load_incluster_config(
            client_configuration=configuration,
            token_filename=str(account_dir / "token"),
            cert_filename=str(account_dir / "ca.crt"),
        )
        return cls(k8s_client.ApiClient(configuration), f"{configuration.host} (in-cluster)")

    async def close(self) -> None:
        await self.api.close()

    async def _send(
        self,
        method: str,
        path: str,
        query: Query,
        body: Any,
        content_type: str,
        timeout: Any,
    ) -> Any:
        headers = {"Accept": JSON, "Content-Type": content_type}
        try:
            return await self.api.call_api(
                path,
                method,
                query_params=_query(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise KubeApiError(
                0, f"cannot reach the API server at {self.description}: {exc!r}"
            ) from exc

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = None,
        body: Any = None,
        content_type: str = JSON,
        timeout: float = REQUEST_TIMEOUT_S,
    ) -> Any:
        """One request; the answer's JSON, or KubeApiError."""
        response = await self._send(method, path, query, body, content_type, timeout)
        async with response:
            try:
                text = await response.text()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise KubeApiError(0, f"{method} {path}: the answer was cut off: {exc!r}") from exc
            if not 200 <= response.status < 300:
                raise KubeApiError.from_answer(response.status, text)
        try:
            return json.loads(text) if text else None
        except ValueError as exc:
            raise KubeApiError(response.status, f"{method} {path}: not JSON: {exc}") from exc

    async def get(self, path: str, query: Query = None) -> Any:
        return await self.request("GET", path, query=query)

    @contextlib.asynccontextmanager
    async def stream(
        self, path: str, query: Query, read_timeout: float
    ) -> AsyncIterator[AsyncIterator[Any]]:
        """A watch: the decoded JSON lines of a streamed GET (KubeApiError on an error answer).

        `read_timeout` bounds the wait for the next bytes (bookmarks arrive about once a
        minute, and the server ends the watch after `timeoutSeconds`).
        """
        timeout = aiohttp.ClientTimeout(sock_connect=REQUEST_TIMEOUT_S, sock_read=read_timeout)
        response = await self._send("GET", path, query, None, JSON, timeout)
        try:
            if not 200 <= response.status < 300:
                raise KubeApiError.from_answer(response.status, await response.text())
            yield _json_lines(response.content)
        finally:
            response.release()
            response.close()


async def _json_lines(content: aiohttp.StreamReader) -> AsyncIterator[Any]:
    """Newline-delimited JSON from a stream, with no limit on a line's length."""
    pending = b""
    try:
        async for chunk in content.iter_any():
            pending += chunk
            while True:
                end = pending.find(b"\n")
                if end < 0:
                    break
                line, pending = pending[:end], pending[end + 1 :]
                if line.strip():
                    yield json.loads(line)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise KubeApiError(0, f"the watch broke: {exc!r}") from exc
    if pending.strip():
        yield json.loads(pending)
