"""A small synchronous client of the control plane's admin HTTP API (docs/admin-api.md).

An error answer (`{"errors": [...]}` with 400/404/409) becomes `AdminApiError`, which
click shows as each message's `text` on stderr and exit status 1.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import click

from ratline.ca.files import read_private
from ratline.cli.meshref import admin_url
from ratline.settings import state_dir

ADMIN_TOKEN_FILE = "admin-token"

DEFAULT_TIMEOUT_S = 15.0


class AdminApiError(click.ClickException):
    """The admin API refused a request; `messages` are its `errors` (ConfigMessage JSON)."""

    def __init__(self, status: int, messages: list[Mapping[str, Any]], fallback: str) -> None:
        self.status = status
        self.messages = messages
        texts = [str(m.get("text") or m.get("message") or m) for m in messages]
        super().__init__("\n".join(texts) if texts else fallback)

    def show(self, file: IO[Any] | None = None) -> None:
        if self.messages:
            for message in self.messages:
                click.echo(str(message.get("text") or message.get("message")), err=True)
        else:
            click.echo(f"Error: {self.message}", err=True)


class AdminClient:
    """Talks JSON to one control plane's admin API at `base_url` (`http://127.0.0.1:P`)."""

    def __init__(
        self, base_url: str, timeout_s: float = DEFAULT_TIMEOUT_S, token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.token = token
        """The admin credential, sent as `Authorization: Bearer TOKEN`."""

    @classmethod
    def for_mesh(cls, mesh_dir: Path) -> AdminClient:
        """The client of the mesh running in `mesh_dir` (ClickException if none is)."""
        return cls(admin_url(mesh_dir), token=admin_token(mesh_dir))

    def get(self, path: str, query: Mapping[str, str] | None = None) -> Any:
        if query:
            path = f"{path}?{urllib.parse.urlencode(query)}"
        return self._request("GET", path, None, {})

    def post(self, path: str, body: bytes, headers: Mapping[str, str] | None = None) -> Any:
        return self._request("POST", path, body, dict(headers or {}))

    def _request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        url = self.base_url + path
        if self.token:
            headers = {**headers, "Authorization": f"Bearer {self.token}"}
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                return _decode(response.read(), url)
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                data = json.loads(raw)
            except ValueError:
                data = None
            errors = data.get("errors") if isinstance(data, dict) else None
            fallback = f"{method} {path}: HTTP {exc.code}: {raw.decode('utf-8', 'replace')[:500]}"
            raise AdminApiError(exc.code, list(errors or ()), fallback) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise click.ClickException(
                f"cannot reach the control plane at {self.base_url}: {reason}"
            ) from None


def admin_token(mesh_dir: Path) -> str | None:
    """The mesh's admin credential (`DIR/.ratline/admin-token`, 0600), if it has one."""
    path = state_dir(mesh_dir.resolve()) / ADMIN_TOKEN_FILE
    if not path.exists():
        return None
    try:
        return read_private(path).decode().strip()
    except OSError as exc:
        raise click.ClickException(f"cannot use the admin credential: {exc}") from None


def _decode(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        raise click.ClickException(f"{url}: the answer is not JSON") from None
