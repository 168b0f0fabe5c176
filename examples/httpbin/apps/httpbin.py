"""A small httpbin (the HTTP test service Istio's traffic tasks use), standard library only.

Endpoints, as httpbin's: `GET /get` and `/anything[/...]` (the request as JSON), `/headers`,
`/status/CODE` (answers CODE), `/delay/SECONDS` (waits, at most 10 s), `/ip`, `/health`.
Every answer carries `x-httpbin-instance` (the instance that served it) and
`x-httpbin-version` (`$VERSION`), so traffic can be counted per replica and version.

`HTTPBIN_FAIL_STATUS=500` makes the instance answer that status to every request but
`/health` and `/admin/` (a broken replica, for outlier detection); `GET /admin/fail?status=503`
switches that on at run time (`status=0` off). `HTTPBIN_ACCESS_LOG=1` prints one line per
request to stderr (method, path, Host).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

INSTANCE = os.environ.get("RATLINE_INSTANCE") or os.environ.get("HOSTNAME") or "httpbin"
VERSION = os.environ.get("VERSION", "v1")
FAIL_STATUS = [int(os.environ.get("HTTPBIN_FAIL_STATUS") or 0)]
"""What every request answers (0: normal); a list so `/admin/fail` can change it."""
ACCESS_LOG = bool(os.environ.get("HTTPBIN_ACCESS_LOG"))
MAX_DELAY_S = 10.0


class HttpbinHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "httpbin"

    def _answer(self, status: int, data: Any | None = None) -> None:
        body = b"" if data is None else json.dumps(data, indent=1).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-httpbin-instance", INSTANCE)
        self.send_header("x-httpbin-version", VERSION)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _request(self) -> dict[str, Any]:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length > 0 else ""
        return {
            "method": self.command,
            "url": self.path,
            "args": {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()},
            "headers": {k.title(): v for k, v in self.headers.items()},
            "origin": self.client_address[0],
            "data": body,
            "instance": INSTANCE,
            "version": VERSION,
        }

    def _handle(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if ACCESS_LOG:
            print(
                f"{self.command} {self.path} host={self.headers.get('Host')}",
                file=sys.stderr,
                flush=True,
            )
        if path == "/health":
            self._answer(200, {"status": "ok"})
        elif path == "/admin/fail":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            FAIL_STATUS[0] = int((query.get("status") or ["0"])[-1] or 0)
            self._answer(200, {"fail_status": FAIL_STATUS[0]})
        elif FAIL_STATUS[0]:
            self._answer(FAIL_STATUS[0], {"error": f"{INSTANCE} answers {FAIL_STATUS[0]}"})
        elif path.startswith("/status/"):
            code = path.removeprefix("/status/")
            self._answer(int(code) if code.isdigit() and 200 <= int(code) <= 599 else 400)
        elif path.startswith("/delay/"):
            try:
                seconds = min(float(path.removeprefix("/delay/")), MAX_DELAY_S)
            except ValueError:
                self._answer(400, {"error": "delay must be a number of seconds"})
                return
            time.sleep(max(seconds, 0.0))
            self._answer(200, self._request())
        elif path == "/headers":
            self._answer(200, {"headers": self._request()["headers"]})
        elif path == "/ip":
            self._answer(200, {"origin": self.client_address[0]})
        elif path in ("/", "/get") or path.startswith("/anything"):
            self._answer(200, self._request())
        else:
            self._answer(404, {"error": f"not found: {path}"})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler], name: str) -> None:
    """Serve `handler` on 127.0.0.1:$PORT until interrupted (the client app uses it too)."""
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    print(f"{name} listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    serve(HttpbinHandler, f"httpbin {INSTANCE}")
