"""An HTTP front for TCP calls: `GET /echo?text=hi` sends `hi` to tcp-echo, returns the answer.

The app reaches `tcp-echo` the way a Kubernetes pod does, through the service variables
(`TCP_ECHO_SERVICE_HOST`, `TCP_ECHO_SERVICE_PORT_TCP`): in local mode they point at its
sidecar's local outbound listener for the service. `?port=tcp-other` picks another named
port; `?service=NAME` another Service of the namespace.
"""

from __future__ import annotations

import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def call(service: str, port_name: str, text: str) -> str:
    prefix = "".join(c if c.isalnum() else "_" for c in service.upper())
    host = os.environ[f"{prefix}_SERVICE_HOST"]
    port_key = "".join(c if c.isalnum() else "_" for c in port_name.upper())
    port = int(os.environ[f"{prefix}_SERVICE_PORT_{port_key}"])
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(text.encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.decode()


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            body = call(query.get("service", "tcp-echo"), query.get("port", "tcp"),
                        query.get("text", "hello")).encode()
            status = 200
        except (OSError, KeyError, ValueError) as exc:
            body, status = f"error: {exc!r}\n".encode(), 502
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
