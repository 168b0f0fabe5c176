"""The mesh CA through a real mesh: a plugged-in CA (Istio's cacerts) with an intermediate
and a custom trust domain, and a CA key others can read refused at start."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.ca.test_authority import _write_plugged
from tests.e2e.conftest import wait_status
from tests.security.conftest import mesh_files

pytestmark = pytest.mark.e2e


def _served_chain(port: int, ca_file: Path) -> tuple[list[x509.Certificate], str]:
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts",
         "-CAfile", str(ca_file)],
        input="", capture_output=True, text=True, timeout=20,
    )
    out = proc.stdout + proc.stderr
    blocks = out.split("-----BEGIN CERTIFICATE-----")[1:]
    pems = [
        "-----BEGIN CERTIFICATE-----" + b.split("-----END CERTIFICATE-----")[0]
        + "-----END CERTIFICATE-----\n"
        for b in blocks
    ]
    return [x509.load_pem_x509_certificate(p.encode()) for p in pems], out


def test_plugged_in_ca_and_trust_domain(make_mesh: Any) -> None:
    mesh = make_mesh(
        {**mesh_files(), "mesh.yaml": "trustDomain: example.org\n"}, start=False
    )
    root = _write_plugged(mesh.dir / "cacerts")
    mesh.up()
    wait_status(mesh, mesh.gateway_url("/"), timeout=30)
    hello = next(i for i in mesh.run_info()["instances"] if i["name"] == "hello-v1-0")
    chain, out = _served_chain(hello["ports"][0]["inbound_port"], mesh.dir / "cacerts" /
                               "root-cert.pem")
    assert "Verify return code: 0 (ok)" in out, out
    leaf, intermediate = chain[:2]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/ns/default/sa/hello-sa"
    ]
    leaf.verify_directly_issued_by(intermediate)
    intermediate.verify_directly_issued_by(root)
    assert not (mesh.dir / ".ratline" / "ca" / "root-key.pem").exists()


def test_a_ca_key_others_can_read_is_refused_at_start(make_mesh: Any) -> None:
    mesh = make_mesh(mesh_files(), start=False)
    _write_plugged(mesh.dir / "cacerts", key_mode=0o644)
    proc = mesh.ratline("up", "-d", str(mesh.dir), check=False, timeout=60)
    assert proc.returncode != 0
    assert "chmod 600" in proc.stderr and "ca-key.pem" in proc.stderr, proc.stderr
    os.chmod(mesh.dir / "cacerts" / "ca-key.pem", 0o600)
    mesh.up()
    wait_status(mesh, mesh.gateway_url("/"), timeout=30)
