"""Servers outside the mesh that egress tests call: plain HTTP and TLS on loopback.

Each runs in a thread of the test process (not a mesh workload) and answers with what it
saw: the `Host` header, the path, and for TLS the SNI the client sent. The TLS server's
certificate is made with openssl for the test, signed by a CA of the test's own.
"""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        sni = getattr(self.server, "last_sni", {}).get(self.client_address, "")
        body = json.dumps(
            {"server": self.server.label, "host": self.headers.get("Host", ""),  # type: ignore[attr-defined]
             "path": self.path, "sni": sni}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, label: str, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.label = label
        self.context = context
        self.last_sni: dict[Any, str] = {}
        self.snis: list[str] = []

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.context is None:
            return sock, addr
        seen: list[str] = []

        def remember(_conn: Any, name: str | None, _ctx: Any) -> None:
            seen.append(name or "")

        self.context.sni_callback = remember
        tls_sock = self.context.wrap_socket(sock, server_side=True)
        sni = seen[0] if seen else ""
        self.last_sni[addr] = sni
        self.snis.append(sni)
        return tls_sock, addr


@dataclass
class RunningServer:
    server: _Server

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def snis(self) -> list[str]:
        return self.server.snis


@contextmanager
def external_server(label: str, context: ssl.SSLContext | None = None) -> Iterator[RunningServer]:
    """An HTTP (or, with `context`, HTTPS) server on 127.0.0.1, stopped on exit."""
    server = _Server(label, context)
    thread = threading.Thread(target=server.serve_forever, name=f"{label} server", daemon=True)
    thread.start()
    try:
        yield RunningServer(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Pki:
    """A CA and certificates made with openssl in `dir`."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def cert(self, name: str) -> tuple[Path, Path]:
        return self.dir / f"{name}.crt", self.dir / f"{name}.key"


def make_pki(directory: Path, server_names: tuple[str, ...], clients: tuple[str, ...]) -> Pki:
    """A test CA, a server certificate for `server_names` and client certificates."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
             "/CN=egress test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)
    for name, sans in [("server", server_names), *((c, (c,)) for c in clients)]:
        ext = directory / f"{name}.ext"
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{s}" for s in sans) + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={sans[0]}",
                 "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", ext.name, "-out", f"{name}.crt",
                 cwd=directory)
    return Pki(directory)


def server_context(pki: Pki, require_client_cert: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki.cert("server"))
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    return context
