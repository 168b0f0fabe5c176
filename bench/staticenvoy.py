"""The floor for the data plane benchmark: two Envoys with a minimal hand-written config.

Client-side Envoy: one listener, every request to the server-side Envoy. Server-side
Envoy: one listener, every request to the backend. With `tls`, the hop between them is
mutual TLS with SPIFFE URI SANs checked, as a mesh would do it. Certificates come from
the `openssl` command (a throwaway CA per run).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from bench.procs import ProcessGroup, free_port
from ratline.agent.bootstrap import envoy_args

TRUST_DOMAIN = "cluster.local"


def make_certificates(work: Path) -> dict[str, Path]:
    """A CA and two leaf certificates (client, server) with SPIFFE URI SANs."""
    work.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = work / "ca.key", work / "ca.crt"

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *curve, "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "2",
        "-subj", "/CN=bench-ca")
    out = {"ca": ca_crt}
    for who in ("client", "server"):
        key, csr, crt, ext = (work / f"{who}.{s}" for s in ("key", "csr", "crt", "ext"))
        ext.write_text(f"subjectAltName=URI:spiffe://{TRUST_DOMAIN}/ns/default/sa/{who}\n")
        run("req", *curve, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={who}")
        run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))
        out[f"{who}_key"], out[f"{who}_crt"] = key, crt
    return out


def _tls_context(certs: dict[str, Path], me: str, peer: str) -> dict[str, Any]:
    return {
        "tls_certificates": [{
            "certificate_chain": {"filename": str(certs[f"{me}_crt"])},
            "private_key": {"filename": str(certs[f"{me}_key"])},
        }],
        "validation_context": {
            "trusted_ca": {"filename": str(certs["ca"])},
            "match_typed_subject_alt_names": [{
                "san_type": "URI",
                "matcher": {"exact": f"spiffe://{TRUST_DOMAIN}/ns/default/sa/{peer}"},
            }],
        },
    }


def _http_listener(name: str, port: int, cluster: str,
                   tls: dict[str, Any] | None = None) -> dict[str, Any]:
    listener: dict[str, Any] = {
        "name": name,
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{
            "filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network."
                             "http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": name,
                    "route_config": {"virtual_hosts": [{
                        "name": "all", "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster}}],
                    }]},
                    "http_filters": [{
                        "name": "envoy.filters.http.router",
                        "typed_config": {"@type": "type.googleapis.com/envoy.extensions."
                                                  "filters.http.router.v3.Router"},
                    }],
                },
            }],
        }],
    }
    if tls is not None:
        listener["filter_chains"][0]["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                         "DownstreamTlsContext",
                "require_client_certificate": True,
                "common_tls_context": tls,
            },
        }
    return listener


def _cluster(name: str, port: int, tls: dict[str, Any] | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{
            "endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": port}}}}]}]},
    }
    if tls is not None:
        cluster["transport_socket"] = {
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                         "UpstreamTlsContext",
                "common_tls_context": tls,
            },
        }
    return cluster


def client_side(listen: int, server_envoy: int, admin: int,
                certs: dict[str, Path] | None) -> dict[str, Any]:
    tls = _tls_context(certs, "client", "server") if certs else None
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [_http_listener("outbound", listen, "upstream")],
            "clusters": [_cluster("upstream", server_envoy, tls)],
        },
    }


def server_side(listen: int, backend: int, admin: int,
                certs: dict[str, Path] | None) -> dict[str, Any]:
    tls = _tls_context(certs, "server", "client") if certs else None
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [_http_listener("inbound", listen, "backend", tls)],
            "clusters": [_cluster("backend", backend)],
        },
    }


def one_route(listen: int, backend: int, admin: int) -> dict[str, Any]:
    """A bare Envoy with a one-route static config (the footprint baseline)."""
    return server_side(listen, backend, admin, None)


def start_floor(procs: ProcessGroup, envoy: str, work: Path, backend: int,
                certs: dict[str, Path] | None) -> tuple[int, list[int]]:
    """Start the two floor Envoys; returns the client-side listen port and both PIDs."""
    s_listen, c_listen = free_port(), free_port()
    pids = []
    for name, config in (
        ("floor-server", server_side(s_listen, backend, free_port(), certs)),
        ("floor-client", client_side(c_listen, s_listen, free_port(), certs)),
    ):
        cfg = work / f"{name}.json"
        cfg.write_text(json.dumps(config))
        pids.append(procs.start(envoy_args(envoy, str(cfg), concurrency=1,
                                           log_level="warning"), name=name).pid)
    return c_listen, pids
