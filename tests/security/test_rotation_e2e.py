"""Certificate rotation under load: one-minute certificates, steady traffic over three
rotations, zero failed requests.

The traffic mixes requests through the gateway (pooled mTLS connections gateway → sidecar)
with a new mTLS connection per request straight to the workload's inbound port, so every
rotated certificate is presented in fresh handshakes too.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ratline.ca.csr import make_csr, new_private_key, private_key_pem
from ratline.ca.tokens import mint_token
from tests.e2e.conftest import Mesh, wait_status
from tests.helpers import http_get, wait_for
from tests.security.conftest import mesh_files

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TTL_S = 60
ROTATIONS = 3


def _client_context(mesh: Mesh, tmp: Path) -> ssl.SSLContext:
    """An mTLS client identity of the mesh (client-sa), obtained from the real CSR endpoint."""
    state = mesh.dir / ".ratline"
    token = mint_token((state / "ca" / "token-key").read_bytes(), namespace="default",
                       service_account="client-sa", instance="load")
    key = new_private_key()
    csr = make_csr(key, "spiffe://cluster.local/ns/default/sa/client-sa")
    bundle = str(state / "ca" / "trust-bundle.pem")
    ca = json.loads((state / "controlplane.json").read_text())["ca"]
    request = urllib.request.Request(
        f"https://{ca}/v1/certificates", method="POST",
        data=json.dumps({"csr": csr.decode(), "ttl_s": 3600}).encode(),
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(
        request, context=ssl.create_default_context(cafile=bundle), timeout=10
    ) as resp:
        answer: dict[str, Any] = json.loads(resp.read())
    (tmp / "cert.pem").write_text(answer["cert_chain"])
    (tmp / "key.pem").write_bytes(private_key_pem(key))
    context = ssl.create_default_context(cafile=bundle)
    context.check_hostname = False  # workload certs carry a SPIFFE URI, no host name
    context.load_cert_chain(tmp / "cert.pem", tmp / "key.pem")
    return context


def _serial(mesh: Mesh, instance: str) -> str:
    inst = next(i for i in mesh.run_info()["instances"] if i["name"] == instance)
    _, body, _ = http_get(f"http://127.0.0.1:{inst['sidecar']['admin_port']}/certs")
    certs = json.loads(body)["certificates"]
    return str(next(c["cert_chain"][0]["serial_number"] for c in certs if c.get("cert_chain")))


def test_rotation_under_load_fails_no_request(make_mesh: Any, tmp_path: Path) -> None:
    mesh = make_mesh(mesh_files(), cert_ttl_s=str(TTL_S))
    wait_status(mesh, mesh.gateway_url("/"), timeout=30)
    hello = next(i for i in mesh.run_info()["instances"] if i["name"] == "hello-v1-0")
    inbound = hello["ports"][0]["inbound_port"]
    context = _client_context(mesh, tmp_path)
    counts = {"ok": 0, "failed": 0}
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                status, _, _ = http_get(mesh.gateway_url("/"), timeout=5)
                conn = http.client.HTTPSConnection("127.0.0.1", inbound, context=context,
                                                   timeout=5)
                conn.request("GET", "/")
                direct = conn.getresponse().status
                conn.close()
                ok = status == 200 and direct == 200
                if not ok:
                    failures.append(f"gateway {status}, direct {direct}")
            except Exception as exc:
                ok = False
                failures.append(repr(exc))
            counts["ok" if ok else "failed"] += 1
            time.sleep(0.02)

    thread = threading.Thread(target=load, daemon=True)
    serials = [_serial(mesh, "hello-v1-0")]
    thread.start()
    try:
        for _ in range(ROTATIONS):
            def rotated() -> str | None:
                serial = _serial(mesh, "hello-v1-0")
                return serial if serial != serials[-1] else None

            serials.append(wait_for(rotated, timeout=TTL_S, interval=0.5,
                                    what="the sidecar's certificate to rotate"))
    finally:
        stop.set()
        thread.join(timeout=15)
    assert len(set(serials)) == ROTATIONS + 1
    assert counts["failed"] == 0, failures[:5]
    assert counts["ok"] > 500, counts
