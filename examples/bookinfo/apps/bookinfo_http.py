"""Plumbing shared by the Bookinfo apps: the HTTP server, JSON answers, calls to other services.

Standard library only. Each app listens on 127.0.0.1:$PORT. Calls to other services
use urllib, which sends them through `HTTP_PROXY` (the sidecar) when it is set.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PROPAGATED_HEADERS = (
    "end-user",
    "x-request-id",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "b3",
    "x-ot-span-context",
    "traceparent",
    "tracestate",
)
"""Headers an incoming request carries that every downstream call must carry too."""


class BackendError(Exception):
    """A call to another service failed (connection, timeout, or a non-2xx status)."""


def propagated(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The headers to forward downstream (names compared case-insensitively).

    Takes `(name, value)` pairs, e.g. `handler.headers.items()`.
    """
    wanted = set(PROPAGATED_HEADERS)
    return {name.lower(): value for name, value in headers if name.lower() in wanted}


def call_json(url: str, headers: Mapping[str, str], timeout: float) -> Any:
    """GET `url` and decode its JSON answer; raises BackendError on any failure."""
    request = urllib.request.Request(url, headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise BackendError(f"{url}: HTTP {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise BackendError(f"{url}: {exc}") from exc


class Handler(BaseHTTPRequestHandler):
    """Base handler: keep-alive friendly, quiet logs, helpers to answer."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "bookinfo"

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, data: Any) -> None:
        self.send_body(status, json.dumps(data).encode("utf-8"), "application/json")

    def send_not_found(self) -> None:
        self.send_json(404, {"error": f"not found: {self.path}"})

    def book_id(self, text: str) -> int | None:
        """The numeric product id in `text`, or None after answering 400."""
        try:
            return int(text)
        except ValueError:
            self.send_json(400, {"error": "please provide numeric product ID"})
            return None

    def serve_book_api(self, service: str, prefix: str, answer: Callable[[int], None]) -> None:
        """GET /health and GET PREFIX<id> (answered by `answer`); 404 for anything else."""
        path = self.path.split("?", 1)[0]
        if path == "/health":
            self.send_json(200, {"status": f"{service} is healthy"})
        elif not path.startswith(prefix):
            self.send_not_found()
        elif (book_id := self.book_id(path[len(prefix) :])) is not None:
            answer(book_id)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("BOOKINFO_ACCESS_LOG"):
            super().log_message(format, *args)


def serve(handler: Callable[..., BaseHTTPRequestHandler], name: str) -> None:
    """Serve `handler` on 127.0.0.1:$PORT (default 9080) until interrupted."""
    port = int(os.environ.get("PORT", "9080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(f"{name} listening on 127.0.0.1:{server.server_address[1]}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
