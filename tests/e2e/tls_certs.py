"""Certificates for the ingress TLS tests, made with the openssl command line as Istio's
Secure Gateways task makes them; TLS Secrets holding them; TLS clients that report the
certificate the server presented."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key on disk."""

    cert: Path
    key: Path


def make_ca(directory: Path, name: str) -> Pair:
    """A self-signed root (`openssl req -x509`), as the task's `example.com`."""
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-sha256", "-nodes", "-days", "365", "-newkey", "rsa:2048",
        "-subj", f"/O={name} Inc./CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.crt",
        cwd=directory,
    )
    return Pair(directory / f"{name}.crt", directory / f"{name}.key")


def make_leaf(directory: Path, ca: Pair, name: str, serial: int, client: bool = False,
              san: str | None = None) -> Pair:
    """A certificate for DNS name `name` (or the SAN `san`) signed by `ca`, with this
    serial number."""
    stem = f"{name}-{serial}"
    _openssl(
        "req", "-out", f"{stem}.csr", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{stem}.key",
        "-subj", f"/CN={name}/O={name} organization", cwd=directory,
    )
    usage = "clientAuth" if client else "serverAuth"
    (directory / f"{stem}.ext").write_text(
        f"subjectAltName={san or 'DNS:' + name}\nextendedKeyUsage={usage}\n"
    )
    _openssl(
        "x509", "-req", "-sha256", "-days", "365", "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-set_serial", str(serial), "-in", f"{stem}.csr", "-out", f"{stem}.crt",
        "-extfile", f"{stem}.ext", cwd=directory,
    )
    return Pair(directory / f"{stem}.crt", directory / f"{stem}.key")


def tls_secret(name: str, pair: Pair, ca: Path | None = None, namespace: str = "istio-system",
               key: Path | None = None) -> str:
    """`kind: Secret` of type kubernetes.io/tls (base64 `data`), as `kubectl create secret
    tls` writes it; `ca.crt` when a client CA is given."""
    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    lines = [
        "apiVersion: v1", "kind: Secret", f"metadata: {{name: {name}, namespace: {namespace}}}",
        "type: kubernetes.io/tls", "data:", f"  tls.crt: {b64(pair.cert)}",
        f"  tls.key: {b64(key or pair.key)}",
    ]
    if ca is not None:
        lines.append(f"  ca.crt: {b64(ca)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Answer:
    status: int
    serial: int
    """The serial number of the certificate the server presented."""


def https_get(port: int, server_name: str, ca: Path, path: str = "/productpage",
              client: Pair | None = None, timeout: float = 10.0,
              check_hostname: bool = True, host: str = "127.0.0.1") -> Answer:
    """One request on a new TLS connection to `host`:`port` with this SNI, verifying
    the server against `ca` (and offering `client`'s certificate)."""
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = check_hostname
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as conn:
        der = conn.getpeercert(binary_form=True)
        serial = _serial(der or b"")
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {server_name}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return Answer(status, serial)


def _serial(der: bytes) -> int:
    from cryptography import x509

    return int(x509.load_der_x509_certificate(der).serial_number)
