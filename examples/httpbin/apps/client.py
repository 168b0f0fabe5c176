"""A client in the mesh for the traffic tasks (the role of Istio's `sleep` and `fortio`
pods), standard library only. Its calls go through its sidecar (`HTTP_PROXY`).

- `GET /call?url=URL[&h=Name:Value...][&method=OPTIONS]`: one request; answers JSON
  `{status, headers, body, seconds}`.
- `GET /load?url=URL&n=N&c=C[&h=Name:Value...]`: N requests, C at a time (fortio's
  `-n N -c C -qps 0`); answers JSON `{codes: {status: count}, instances: {name: count},
  versions: {version: count}}`, counting httpbin's `x-httpbin-instance` and
  `x-httpbin-version` answer headers.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from httpbin import serve

TIMEOUT_S = float(os.environ.get("CLIENT_TIMEOUT_S", "15"))
MAX_REQUESTS = 2000


def fetch(
    url: str, headers: dict[str, str], method: str = "GET"
) -> tuple[int, dict[str, str], str]:
    """One request through HTTP_PROXY: (status, headers, body); status 0 if it failed."""
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return (
                response.status,
                dict(response.headers),
                response.read().decode("utf-8", "replace"),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers or {}), exc.read().decode("utf-8", "replace")
    except OSError as exc:
        return 0, {}, repr(exc)


def load(url: str, headers: dict[str, str], n: int, concurrency: int) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    instances: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    lock = threading.Lock()
    remaining = [n]

    def worker() -> None:
        while True:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            status, answer, _ = fetch(url, headers)
            lowered = {k.lower(): v for k, v in answer.items()}
            with lock:
                codes[str(status)] += 1
                if "x-httpbin-instance" in lowered:
                    instances[lowered["x-httpbin-instance"]] += 1
                if "x-httpbin-version" in lowered:
                    versions[lowered["x-httpbin-version"]] += 1

    threads = [threading.Thread(target=worker) for _ in range(max(1, concurrency))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"codes": dict(codes), "instances": dict(instances), "versions": dict(versions)}


class ClientHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _answer(self, status: int, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        target = (query.get("url") or [""])[-1]
        headers = dict(h.split(":", 1) for h in query.get("h", []) if ":" in h)
        if url.path == "/health":
            self._answer(200, {"status": "ok"})
        elif not target:
            self._answer(400, {"error": "url= is needed"})
        elif url.path == "/call":
            started = time.monotonic()
            method = (query.get("method") or ["GET"])[-1]
            status, answer, body = fetch(target, headers, method)
            seconds = time.monotonic() - started
            self._answer(
                200, {"status": status, "headers": answer, "body": body, "seconds": seconds}
            )
        elif url.path == "/load":
            n = min(int((query.get("n") or ["10"])[-1]), MAX_REQUESTS)
            concurrency = int((query.get("c") or ["1"])[-1])
            self._answer(200, load(target, headers, n, concurrency))
        else:
            self._answer(404, {"error": f"not found: {url.path}"})

    def log_message(self, format: str, *args: Any) -> None:
        pass


if __name__ == "__main__":
    serve(ClientHandler, "client")
