"""TCP and TLS traffic through real Envoys: Istio's "TCP Traffic Shifting" task, `tcp:`
and `tls:` routes at sidecars (through the local outbound listeners apps are told about)
and at the ingress gateway (a TCP server, a TLS PASSTHROUGH server routed by SNI).

One mesh for the module: `examples/tcp-echo` (tcp-echo v1 answers `one …`, v2 `two …`,
and an `echo-client` app that calls it through its sidecar, as a pod would, with the
Kubernetes service variables) plus a TLS echo service (v1/v2) whose answers name the SNI.
Every count is of real connections; weights are checked with bounds that a wrong weight
falls outside of.
"""

from __future__ import annotations

import datetime
import json
import shutil
import socket
import ssl
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e.conftest import Mesh, mesh_env, version_subsets
from tests.e2e.telemetry_tools import Prometheus, running_prometheus
from tests.helpers import free_fixed_port, http_get, wait_for

pytestmark = [pytest.mark.e2e]

REPO = Path(__file__).resolve().parents[2]
TCP_ECHO = REPO / "examples" / "tcp-echo"
SAMPLES = REPO / "examples" / "tcp-echo-samples"
TLS_ECHO_APP = Path(__file__).resolve().parent / "apps" / "tls_echo.py"

TLS_ECHO_YAML = """\
apiVersion: v1
kind: Service
metadata: {name: tls-echo}
spec:
  selector: {app: tls-echo}
  ports: [{name: tls, port: 9443}]
---
""" + version_subsets("tls-echo") + "".join(
    f"""---
apiVersion: ratline.dev/v1alpha1
kind: Workload
metadata:
  name: tls-echo-{version}
  labels: {{app: tls-echo, version: {version}}}
spec:
  command: [{sys.executable}, tls_echo.py, {prefix}, cert.pem, key.pem]
  ports: [{{name: tls, containerPort: 9443}}]
"""
    for version, prefix in (("v1", "one"), ("v2", "two"))
)

TCP_ECHO_SUBSETS = version_subsets("tcp-echo", "tcp-echo-destination")


def _write_certificate(directory: Path) -> Path:
    """A self-signed certificate for `*.example.com`; returns its path (the trust root)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls-echo")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("*.example.com")]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return directory / "cert.pem"


@pytest.fixture(scope="module")
def tcp_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    root = tmp_path_factory.mktemp("tcp")
    mesh_dir = root / "mesh"
    shutil.copytree(TCP_ECHO, mesh_dir, ignore=shutil.ignore_patterns(".ratline"))
    shutil.copy(TLS_ECHO_APP, mesh_dir / "tls_echo.py")
    _write_certificate(mesh_dir)
    (mesh_dir / "tls-echo.yaml").write_text(TLS_ECHO_YAML)
    (mesh_dir / "subsets.yaml").write_text(TCP_ECHO_SUBSETS)
    # MeshConfig's access log in JSON (test_mesh_config_json_access_log_of_tcp_sessions).
    (mesh_dir / "mesh.yaml").write_text("accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n")
    # The control plane logs JSON lines here (test_control_plane_logs_json_lines).
    mesh = Mesh(mesh_dir, mesh_env(free_fixed_port(), RATLINE_LOG_FORMAT="json"))
    try:
        mesh.up()
        wait_for(lambda: echo(mesh, "ready").startswith(("one", "two")), timeout=30,
                 what="echo-client reaches tcp-echo")
        yield mesh
    finally:
        mesh.down()


# ---- helpers ---------------------------------------------------------------------------


def _instance(mesh: Mesh, name: str) -> dict[str, object]:
    return next(i for i in mesh.run_info()["instances"] if i["name"] == name)


def echo(mesh: Mesh, text: str, port: str = "tcp") -> str:
    """What tcp-echo answered the echo-client app (which calls it through its sidecar)."""
    app_port = _instance(mesh, "echo-client-0")["ports"][0]["app_port"]  # type: ignore[index]
    query = urllib.parse.urlencode({"text": text, "port": port})
    status, body, _ = http_get(f"http://127.0.0.1:{app_port}/echo?{query}")
    assert status == 200, body
    return body.strip()


def echo_versions(mesh: Mesh, n: int, port: str = "tcp") -> Counter[str]:
    return Counter(echo(mesh, f"m{i}", port).split()[0] for i in range(n))


def send_line(port: int, text: str = "hi", timeout: float = 5.0) -> str:
    """One TCP connection to 127.0.0.1:port: a line out, the answer back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(text.encode() + b"\n")
        return _read_line(conn)


def _read_line(conn: socket.socket | ssl.SSLSocket) -> str:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode().strip()


def gateway_versions(port: int, n: int) -> Counter[str]:
    return Counter(send_line(port).split()[0] for _ in range(n))


def tls_line(port: int, server_name: str, trust: Path, text: str = "hi") -> str:
    """A TLS connection with this SNI, verifying the TLS echo's own certificate (so the
    session went through unbroken), a line out, the answer back."""
    context = ssl.create_default_context(cafile=str(trust))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as conn:
        conn.sendall(text.encode() + b"\n")
        return _read_line(conn)


def local_port(mesh: Mesh, instance: str, hostname: str, port: int) -> int:
    """The sidecar's local outbound port for a service port (what its app was told)."""
    sidecar = _instance(mesh, instance)["sidecar"]
    for entry in sidecar["outbound"]:  # type: ignore[index]
        if (entry["hostname"], entry["port"]) == (hostname, port):
            return int(entry["local_port"])
    raise AssertionError(f"{instance} has no local port for {hostname}:{port}: {sidecar}")


def all_in_a_row(sample: Counter[str], want: str) -> bool:
    return set(sample) == {want}


# ---- the gateway: Istio's TCP Traffic Shifting task ------------------------------------


def test_tcp_traffic_shifting_at_the_gateway(tcp_mesh: Mesh) -> None:
    port = free_fixed_port()
    all_v1 = (SAMPLES / "tcp-echo-all-v1.yaml").read_text().replace("31400", str(port))
    shifted = (SAMPLES / "tcp-echo-20-v2.yaml").read_text().replace("31400", str(port))
    path = tcp_mesh.apply_ok(all_v1, "tcp-echo-all-v1.yaml")
    try:
        # Every connection to v1 (the gateway listens on the server's port, 31400 in
        # Istio's task): 20 in a row, then 50 more.
        wait_for(lambda: all_in_a_row(gateway_versions(port, 20), "one"), timeout=20,
                 what="gateway TCP listener routing to v1")
        assert gateway_versions(port, 50) == Counter({"one": 50})

        tcp_mesh.apply_ok(shifted, "tcp-echo-20-v2.yaml")
        wait_for(lambda: "two" in gateway_versions(port, 10), timeout=20, what="v2 gets traffic")
        counts = gateway_versions(port, 300)
        # 20% of 300: 60 expected, sd 6.9; 40..80 is 2.9 sd, and 10% (30) or 30% (90)
        # fall outside it.
        assert set(counts) == {"one", "two"}, counts
        assert 40 <= counts["two"] <= 80, counts
    finally:
        tcp_mesh.delete_file(path)


def test_gateway_tcp_source_subnet_match(tcp_mesh: Mesh) -> None:
    port = free_fixed_port()
    template = f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: subnet-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tcp, protocol: tcp}}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: subnet-echo}}
spec:
  hosts: ["*"]
  gateways: [subnet-gateway]
  tcp:
  - match: [{{port: {port}, sourceSubnet: SUBNET}}]
    route: [{{destination: {{host: tcp-echo, port: {{number: 9000}}, subset: v2}}}}]
  - route: [{{destination: {{host: tcp-echo, port: {{number: 9000}}, subset: v1}}}}]
"""
    path = tcp_mesh.apply_ok(template.replace("SUBNET", "10.0.0.0/8"), "subnet.yaml")
    try:
        # Connections come from 127.0.0.1: not from 10/8, so the second rule.
        wait_for(lambda: all_in_a_row(gateway_versions(port, 20), "one"), timeout=20,
                 what="connections from outside 10/8 to v1")
        tcp_mesh.apply_ok(template.replace("SUBNET", "127.0.0.0/8"), "subnet.yaml")
        wait_for(lambda: all_in_a_row(gateway_versions(port, 20), "two"), timeout=20,
                 what="connections from 127/8 to v2")
    finally:
        tcp_mesh.delete_file(path)


def test_gateway_tls_passthrough_routes_by_sni(tcp_mesh: Mesh) -> None:
    port = free_fixed_port()
    trust = tcp_mesh.dir / "cert.pem"
    path = tcp_mesh.apply_ok(f"""\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tls-gateway}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {port}, name: tls, protocol: TLS}}
    tls: {{mode: PASSTHROUGH}}
    hosts: ["*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: tls-echo-gateway}}
spec:
  hosts: ["*.example.com"]
  gateways: [tls-gateway]
  tls:
  - match: [{{port: {port}, sniHosts: [a.example.com]}}]
    route: [{{destination: {{host: tls-echo, port: {{number: 9443}}, subset: v1}}}}]
  - match: [{{port: {port}, sniHosts: [b.example.com]}}]
    route: [{{destination: {{host: tls-echo, port: {{number: 9443}}, subset: v2}}}}]
""", "tls-gateway.yaml")
    try:
        first = wait_for(lambda: tls_line(port, "a.example.com", trust), timeout=20,
                         what="TLS passthrough at the gateway")
        # The backend saw the client's SNI and presented its own certificate (verified).
        assert first == "one a.example.com hi"
        assert {tls_line(port, "a.example.com", trust) for _ in range(10)} == {
            "one a.example.com hi"
        }
        assert {tls_line(port, "b.example.com", trust) for _ in range(10)} == {
            "two b.example.com hi"
        }
        # A name no rule takes finds no route: the gateway closes the connection.
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            tls_line(port, "c.example.com", trust)
    finally:
        tcp_mesh.delete_file(path)


# ---- sidecars: local outbound listeners and tcp:/tls: rules ------------------------------

MESH_TCP_RULES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{port: 9001}]
    route: [{destination: {host: tcp-echo, port: {number: 9001}, subset: v2}}]
  - match: [{sourceLabels: {app: SOURCE}}]
    route:
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 70}
    - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 30}
  - route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v1}}]
"""


def test_app_reaches_a_tcp_service_through_the_variables_it_is_given(tcp_mesh: Mesh) -> None:
    # No VirtualService: both versions answer, on both ports of the service.
    assert set(echo_versions(tcp_mesh, 30)) == {"one", "two"}
    assert set(echo_versions(tcp_mesh, 30, "tcp-other")) == {"one", "two"}
    assert echo(tcp_mesh, "hello there").endswith("hello there")


def test_sidecar_tcp_rules_match_port_and_source_labels_with_weights(tcp_mesh: Mesh) -> None:
    path = tcp_mesh.apply_ok(MESH_TCP_RULES.replace("SOURCE", "echo-client"), "tcp-rules.yaml")
    try:
        wait_for(lambda: all_in_a_row(echo_versions(tcp_mesh, 20, "tcp-other"), "two"),
                 timeout=20, what="port 9001 to v2")
        counts = echo_versions(tcp_mesh, 300)
        # 30% of 300: 90 expected, sd 7.9; 66..114 is 3 sd; 20% (60) and 50% (150) fail it.
        assert 66 <= counts["two"] <= 114, counts
        assert counts["one"] + counts["two"] == 300, counts

        # sourceLabels that are not the client's: that rule is skipped, the last applies.
        tcp_mesh.apply_ok(MESH_TCP_RULES.replace("SOURCE", "someone-else"), "tcp-rules.yaml")
        wait_for(lambda: all_in_a_row(echo_versions(tcp_mesh, 30), "one"), timeout=20,
                 what="the catch-all rule (v1) only")
        assert echo_versions(tcp_mesh, 10, "tcp-other") == Counter({"two": 10})
    finally:
        tcp_mesh.delete_file(path)


def test_sidecar_tls_rules_route_by_sni(tcp_mesh: Mesh) -> None:
    trust = tcp_mesh.dir / "cert.pem"
    port = local_port(tcp_mesh, "echo-client-0", "tls-echo.default.svc.cluster.local", 9443)
    path = tcp_mesh.apply_ok("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-echo}
spec:
  hosts: [tls-echo]
  tls:
  - match: [{sniHosts: [a.example.com]}]
    route: [{destination: {host: tls-echo, subset: v1}}]
  - match: [{sniHosts: [b.example.com]}]
    route: [{destination: {host: tls-echo, subset: v2}}]
""", "tls-rules.yaml")
    try:
        wait_for(
            lambda: {tls_line(port, "a.example.com", trust) for _ in range(10)}
            == {"one a.example.com hi"},
            timeout=20, what="SNI a.example.com to v1",
        )
        assert {tls_line(port, "b.example.com", trust) for _ in range(10)} == {
            "two b.example.com hi"
        }
        # Another name: no tls rule, so the service itself (either version).
        others = Counter(tls_line(port, "c.example.com", trust).split()[0] for _ in range(30))
        assert set(others) == {"one", "two"}, others
    finally:
        tcp_mesh.delete_file(path)


def test_apply_prints_what_the_mesh_cannot_do_with_what_was_applied(tcp_mesh: Mesh) -> None:
    path = tcp_mesh.dir.parent / "findings.yaml"
    path.write_text("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo-subnets}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{destinationSubnets: [10.1.0.0/16]}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v2}}]
---
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: add-header}
spec:
  configPatches: [{applyTo: HTTP_FILTER}]
""")
    proc = tcp_mesh.ratline("apply", "-f", str(path), "--mesh", str(tcp_mesh.dir))
    try:
        assert "virtualservice.networking.istio.io/tcp-echo-subnets created" in proc.stdout
        assert "envoyfilter.networking.istio.io/add-header created" in proc.stdout
        lines = proc.stderr.splitlines()
        # Found by translating for the running proxies, printed as kubectl prints warnings.
        subnets = [line for line in lines if "RAT0002" in line]
        assert subnets and "findings.yaml" in subnets[0], proc.stderr
        assert "spec.tcp[0].match[0].destinationSubnets" in subnets[0], proc.stderr
        assert any("RAT0001" in line and "EnvoyFilter" in line for line in lines), proc.stderr
    finally:
        tcp_mesh.delete_file(path)


# ---- Istio's TCP metrics: "Collecting Metrics for TCP Services" ------------------------

TCP_METRICS = ("istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total",
               "istio_tcp_received_bytes_total", "istio_tcp_sent_bytes_total")
ALL_TO_V1 = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo-metrics}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{port: 9000}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}, subset: v1}}]
"""


@pytest.fixture(scope="module")
def tcp_prom(tcp_mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    config = tcp_mesh.ratline(
        "prometheus-config", "--scrape-interval", "1s", "--sd-refresh", "1s",
        "--mesh", str(tcp_mesh.dir),
    ).stdout
    # Every sidecar and the gateway: tcp-echo v1, v2, tls-echo v1, v2, echo-client.
    proxies = 6
    with running_prometheus(config, tmp_path_factory.mktemp("prometheus")) as prom:
        wait_for(lambda: len(prom.targets("envoy-stats")) == proxies, timeout=30,
                 interval=0.2, what=f"{proxies} proxies discovered")
        yield prom


def _tcp_totals(prom: Prometheus, selector: str) -> dict[str, float]:
    return {m: prom.value(f"sum({m}{{{selector}}}) or vector(0)") for m in TCP_METRICS}


def _one_series(prom: Prometheus, selector: str) -> dict[str, str]:
    found = prom.series('istio_tcp_connections_opened_total{'
                        f'{selector},destination_service="tcp-echo.default.svc.cluster.local"}}')
    assert len(found) == 1, found
    return dict(found[0]["metric"])


def test_tcp_echo_sessions_move_istio_tcp_metrics(tcp_mesh: Mesh, tcp_prom: Prometheus) -> None:
    path = tcp_mesh.apply_ok(ALL_TO_V1, "tcp-metrics.yaml")
    port = local_port(tcp_mesh, "echo-client-0", "tcp-echo.default.svc.cluster.local", 9000)
    try:
        wait_for(lambda: all_in_a_row(Counter(send_line(port).split()[0] for _ in range(10)),
                                      "one"), timeout=20, what="tcp-echo:9000 to v1 only")
        to_echo = 'destination_service="tcp-echo.default.svc.cluster.local"'
        selectors = {r: f'reporter="{r}",{to_echo}' for r in ("source", "destination")}
        tcp_prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
        before = {r: _tcp_totals(tcp_prom, s) for r, s in selectors.items()}
        sessions, text = 7, "count these bytes"
        for _ in range(sessions):
            assert send_line(port, text) == f"one {text}"
        expected = {
            "istio_tcp_connections_opened_total": sessions,
            "istio_tcp_connections_closed_total": sessions,
            "istio_tcp_received_bytes_total": sessions * len(text + "\n"),
            "istio_tcp_sent_bytes_total": sessions * len(f"one {text}\n"),
        }
        for reporter, selector in selectors.items():
            want = {m: before[reporter][m] + v for m, v in expected.items()}
            wait_for(lambda s=selector, w=want: _tcp_totals(tcp_prom, s) == w,  # type: ignore[misc]
                     timeout=30, interval=0.2, what=f"{reporter} TCP metrics {want}")
        tcp_prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
        for reporter, selector in selectors.items():
            assert _tcp_totals(tcp_prom, selector) == {
                m: before[reporter][m] + v for m, v in expected.items()}, reporter
        principal = "spiffe://cluster.local/ns/default/sa/default"
        common = {
            "request_protocol": "tcp", "response_flags": "-",
            "destination_service": "tcp-echo.default.svc.cluster.local",
            "destination_service_name": "tcp-echo", "destination_service_namespace": "default",
            "source_principal": principal, "destination_principal": principal,
        }
        source = _one_series(tcp_prom, 'reporter="source",source_workload="echo-client"')
        assert source | common == source, source
        assert source["source_workload_namespace"] == "default"
        assert source["source_canonical_service"] == "echo-client"
        assert source["source_canonical_revision"] == "latest"
        assert source["source_cluster"] == "Kubernetes" and source["pod"] == "echo-client-0"
        assert source["connection_security_policy"] == "unknown"
        # The peer's workload (translate.peer_exchange): the upstream host's EDS metadata
        # at the source, the client's PROXY protocol TLV at the destination.
        assert source["destination_workload"] == "tcp-echo-v1"
        assert source["destination_workload_namespace"] == "default"
        assert source["destination_app"] == "tcp-echo"
        assert source["destination_version"] == "v1"
        assert source["destination_canonical_service"] == "tcp-echo"
        assert source["destination_canonical_revision"] == "v1"
        assert source["destination_cluster"] == "Kubernetes"
        destination = _one_series(tcp_prom, 'reporter="destination",destination_workload='
                                  f'"tcp-echo-v1",source_principal="{principal}"')
        assert destination | common == destination, destination
        assert destination["destination_workload"] == "tcp-echo-v1"
        assert destination["destination_version"] == "v1"
        assert destination["destination_canonical_revision"] == "v1"
        assert destination["destination_cluster"] == "Kubernetes"
        assert destination["pod"] == "tcp-echo-v1-0"
        assert destination["source_workload"] == "echo-client"
        assert destination["source_workload_namespace"] == "default"
        assert destination["source_app"] == "echo-client"
        assert destination["source_version"] == "unknown"  # echo-client has no version label
        assert destination["source_canonical_service"] == "echo-client"
        assert destination["source_canonical_revision"] == "latest"
        assert destination["source_cluster"] == "Kubernetes"
        assert destination["connection_security_policy"] == "mutual_tls"
        assert "response_code" not in destination and "grpc_response_status" not in destination
    finally:
        tcp_mesh.delete_file(path)


def test_gateway_tcp_sessions_move_istio_tcp_metrics(tcp_mesh: Mesh, tcp_prom: Prometheus) -> None:
    port = free_fixed_port()
    all_v1 = (SAMPLES / "tcp-echo-all-v1.yaml").read_text().replace("31400", str(port))
    path = tcp_mesh.apply_ok(all_v1, "tcp-echo-all-v1.yaml")
    try:
        wait_for(lambda: all_in_a_row(gateway_versions(port, 10), "one"), timeout=20,
                 what="gateway TCP listener routing to v1")
        selector = ('reporter="source",proxy_type="router",'
                    'destination_service="tcp-echo.default.svc.cluster.local"')
        tcp_prom.wait_scraped_after("envoy-stats", time.time() + 0.1)
        before = _tcp_totals(tcp_prom, selector)
        for _ in range(5):
            assert send_line(port, "via the gateway") == "one via the gateway"
        want = dict(before)
        want["istio_tcp_connections_opened_total"] += 5
        want["istio_tcp_connections_closed_total"] += 5
        want["istio_tcp_received_bytes_total"] += 5 * len("via the gateway\n")
        want["istio_tcp_sent_bytes_total"] += 5 * len("one via the gateway\n")
        wait_for(lambda: _tcp_totals(tcp_prom, selector) == want, timeout=30, interval=0.2,
                 what=f"gateway TCP metrics {want}")
        series = _one_series(tcp_prom, 'reporter="source",proxy_type="router"')
        assert series["request_protocol"] == "tcp"
        assert series["source_workload"] == "istio-ingressgateway"
        assert series["source_workload_namespace"] == "istio-system"
        assert series["source_principal"] == (
            "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account")
        assert series["destination_principal"] == "spiffe://cluster.local/ns/default/sa/default"
        assert series["destination_workload"] == "tcp-echo-v1"
        assert series["destination_version"] == "v1"
        # The server's side of the same sessions names the gateway as their source.
        at_server = ('reporter="destination",source_workload="istio-ingressgateway",'
                     'source_workload_namespace="istio-system",destination_workload="tcp-echo-v1"')
        opened = f"sum(istio_tcp_connections_opened_total{{{at_server}}}) or vector(0)"
        wait_for(lambda: tcp_prom.value(opened) >= 5, timeout=30, interval=0.2,
                 what="the destination reporter names the gateway")
    finally:
        tcp_mesh.delete_file(path)


def test_control_plane_logs_json_lines(tcp_mesh: Mesh) -> None:
    log = tcp_mesh.dir / ".ratline" / "logs" / "controlplane.log"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert entries, log.read_text()[:500]
    assert {"time", "level", "scope", "msg"} <= set(entries[0]), entries[0]
    assert {e["level"] for e in entries} <= {"debug", "info", "warning", "error", "critical"}


def test_mesh_config_json_access_log_of_tcp_sessions(tcp_mesh: Mesh) -> None:
    port = local_port(tcp_mesh, "echo-client-0", "tcp-echo.default.svc.cluster.local", 9000)
    log = tcp_mesh.dir / ".ratline" / "logs" / "echo-client-0.access.log"

    answer = send_line(port, "log me: JSON")

    def session_logged() -> dict[str, object] | None:
        # Envoy writes the line when the connection ends, flushed within a second or so.
        for line in log.read_text().splitlines() if log.exists() else []:
            entry = json.loads(line)
            if (entry.get("upstream_cluster") == "outbound|9000||tcp-echo.default.svc.cluster.local"
                    and entry.get("bytes_received") == len("log me: JSON\n")):
                return dict(entry)
        return None

    entry = wait_for(session_logged, timeout=20, interval=0.2, what="a JSON access log line")
    # Istio's default JSON fields; the bytes of the line each way.
    assert entry["bytes_sent"] == len(answer + "\n")
    assert entry["response_flags"] == "-" and "start_time" in entry
