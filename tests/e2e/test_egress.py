"""Egress end to end with real Envoys: ServiceEntry, outbound traffic policy, an egress
gateway, TLS origination and passthrough to servers outside the mesh.

One mesh for the module: a `client` workload (requests go to its sidecar's HTTP proxy
listener, as its app's HTTP_PROXY would), and Istio's egress gateway declared as Istio
users declare it (a Deployment with `inject.istio.io/templates: gateway` plus a
Service). The "external" servers run in the test process on 127.0.0.1, outside the mesh;
ServiceEntries reach them by DNS resolution of `localhost`.
"""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.egress_mesh import (
    EgressMesh,
    counter,
    running_egress_mesh,
)
from tests.e2e.egress_servers import Pki
from tests.helpers import http_get, wait_for

pytestmark = pytest.mark.e2e


EGRESS_ROUTING_YAML = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [edition.external.test]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-external}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: external
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-external-through-egress-gateway}
spec:
  hosts: [edition.external.test]
  gateways: [istio-egressgateway, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: external
        port: {number: 80}
  - match:
    - gateways: [istio-egressgateway]
      port: 80
    route:
    - destination:
        host: edition.external.test
        port: {number: 80}
"""


@pytest.fixture(scope="module")
def egress(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EgressMesh]:
    with running_egress_mesh(tmp_path_factory.mktemp("egress")) as mesh:
        yield mesh


def test_egress_gateway_is_its_own_envoy_and_listed(egress: EgressMesh) -> None:
    gateways = {g["name"]: g for g in egress.mesh.run_info()["gateways"]}
    assert set(gateways) == {"istio-ingressgateway-0", "istio-egressgateway-0"}
    egw = gateways["istio-egressgateway-0"]
    assert egw["namespace"] == "istio-system"
    assert egw["labels"]["istio"] == "egressgateway"
    assert egw["admin_port"] != gateways["istio-ingressgateway-0"]["admin_port"]

    def both_synced() -> dict[tuple[str, str], Any] | None:
        found = {(p["instance"], p["namespace"]): p for p in egress.mesh.proxy_status()}
        wanted = [found.get((f"istio-{kind}gateway-0", "istio-system"))
                  for kind in ("ingress", "egress")]
        ok = all(p is not None and p["types"]["CDS"]["state"] == "SYNCED" for p in wanted)
        return found if ok else None

    proxies = wait_for(both_synced, 30, what="both gateways SYNCED in proxy-status")
    assert proxies[("istio-egressgateway-0", "istio-system")]["workload"] == "istio-egressgateway"
    table = egress.mesh.ratline("proxy-status", "--mesh", str(egress.mesh.dir)).stdout
    assert "istio-egressgateway-0.istio-system" in table, table


def test_service_entry_dns_resolves_localhost(egress: EgressMesh) -> None:
    def answered() -> dict[str, Any] | None:
        status, body = egress.get("http://edition.external.test/direct")
        return json.loads(body) if status == 200 else None

    seen = wait_for(answered, 30, what="external host through the sidecar")
    assert seen["server"] == "plain" and seen["path"] == "/direct"
    assert seen["host"] == "edition.external.test"


def test_egress_gateway_path_in_both_envoys_stats(egress: EgressMesh) -> None:
    routing = egress.apply(EGRESS_ROUTING_YAML, "egress-routing.yaml")
    egw_cluster = "outbound|80|external|istio-egressgateway.istio-system.svc.cluster.local"
    ext_cluster = "outbound|80||edition.external.test"

    def gateway_bound() -> dict[str, Any] | None:
        gateway = egress.gateway("istio-egressgateway-0")
        return gateway if gateway["server_ports"].get("80") else None

    gateway = wait_for(gateway_bound, 30, what="egress gateway listening for server port 80")
    egw_admin = int(gateway["admin_port"])

    def through_gateway() -> bool:
        before = counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total")
        status, body = egress.get("http://edition.external.test/via-gateway")
        after = counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total")
        return status == 200 and json.loads(body)["path"] == "/via-gateway" and after > before

    wait_for(through_gateway, 30, what="requests to the external host through the egress gateway")
    sidecar_before = counter(egress.client_admin, f"cluster.{egw_cluster}.upstream_rq_total")
    gateway_before = counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total")
    direct_before = counter(egress.client_admin, f"cluster.{ext_cluster}.upstream_rq_total")
    for _ in range(5):
        status, _body = egress.get("http://edition.external.test/again")
        assert status == 200
    assert counter(egress.client_admin, f"cluster.{egw_cluster}.upstream_rq_total") \
        - sidecar_before == 5
    assert counter(egw_admin, f"cluster.{ext_cluster}.upstream_rq_total") - gateway_before == 5
    assert counter(egress.client_admin, f"cluster.{ext_cluster}.upstream_rq_total") \
        == direct_before, "the sidecar went to the external host directly"
    egress.mesh.delete_file(routing)


def istio_requests(stats_port: int, **labels: str) -> int:
    """Sum of `istio_requests_total` on a proxy's merged metrics port with these labels."""
    _, body, _ = http_get(f"http://127.0.0.1:{stats_port}/stats/prometheus")
    total = 0
    for line in body.splitlines():
        if not line.startswith("istio_requests_total{"):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += int(float(value))
    return total


SIDECAR_ALLOW_ANY = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client-allow-any}
spec:
  workloadSelector: {labels: {app: client}}
  outboundTrafficPolicy: {mode: ALLOW_ANY}
"""


def test_allow_any_passes_through_and_registry_only_blocks(egress: EgressMesh) -> None:
    unknown = f"http://127.0.0.1:{egress.external.port}/unknown"
    registered = "http://edition.external.test/registered"
    passthrough = "cluster.PassthroughCluster.upstream_rq_total"

    def answer(url: str, want: int) -> str | None:
        status, body = egress.get(url)
        return body if status == want else None

    # MeshConfig's default, ALLOW_ANY: a host outside the registry passes through.
    before = counter(egress.client_admin, passthrough)
    assert json.loads(wait_for(lambda: answer(unknown, 200), 30, what="passthrough"))["path"] \
        == "/unknown"
    assert counter(egress.client_admin, passthrough) > before
    stats_port = int(egress.instance("client-0")["sidecar"]["stats_port"])
    wait_for(lambda: istio_requests(stats_port, destination_service_name="PassthroughCluster",
                                    response_code="200"), 15, what="passthrough metric")

    # Mesh-wide REGISTRY_ONLY (mesh.yaml, Istio's meshConfig): 502, counted as BlackHoleCluster.
    mesh_config = egress.mesh.dir / "mesh.yaml"
    mesh_config.write_text("outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\n")
    try:
        wait_for(lambda: answer(unknown, 502) is not None, 30, what="unknown host → 502")
        assert json.loads(wait_for(lambda: answer(registered, 200), 10, what="registered"))[
            "path"] == "/registered", "a ServiceEntry host must stay reachable"
        blocked = wait_for(
            lambda: istio_requests(stats_port, destination_service_name="BlackHoleCluster",
                                   response_code="502"), 15, what="BlackHoleCluster metric")
        assert blocked >= 1
        # A Sidecar's own outboundTrafficPolicy wins over the mesh's for its workloads.
        sidecar = egress.apply(SIDECAR_ALLOW_ANY, "sidecar-allow-any.yaml")
        wait_for(lambda: answer(unknown, 200), 30, what="Sidecar ALLOW_ANY over REGISTRY_ONLY")
        egress.mesh.delete_file(sidecar)
        wait_for(lambda: answer(unknown, 502) is not None, 30, what="REGISTRY_ONLY again")
    finally:
        mesh_config.unlink()
    wait_for(lambda: answer(unknown, 200), 30, what="ALLOW_ANY again")


def tls_service_entry(name: str, host: str, target: int) -> str:
    """Istio's TLS origination ServiceEntry: port 80 (HTTP, targetPort 443) and 443."""
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}}}
spec:
  hosts: [{host}]
  ports:
  - {{number: 80, name: http-port, protocol: HTTP, targetPort: 443}}
  - {{number: 443, name: https-port, protocol: HTTPS}}
  resolution: DNS
  endpoints:
  - address: localhost
    ports: {{http-port: {target}, https-port: {target}}}
"""


def originate(name: str, host: str, port: int, tls: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}}}
spec:
  host: {host}
  trafficPolicy:
    portLevelSettings:
    - port: {{number: {port}}}
      tls: {tls}
"""


def _json_answer(egress: EgressMesh, url: str) -> dict[str, Any] | None:
    status, body = egress.get(url)
    return json.loads(body) if status == 200 else None


def test_tls_origination_at_the_sidecar_simple_with_sni(egress: EgressMesh) -> None:
    ca = egress.pki.ca
    entry = egress.apply(tls_service_entry("secure", "secure.external.test", egress.secure.port),
                         "secure-se.yaml")
    url = "http://secure.external.test/originated"
    rule = egress.apply(originate("originate-secure", "secure.external.test", 80,
                                  f"{{mode: SIMPLE, caCertificates: {ca}}}"), "secure-dr.yaml")
    # No `sni`: the request's Host is the SNI, and the certificate is checked against it.
    seen = wait_for(lambda: _json_answer(egress, url), 30, what="TLS origination (SIMPLE)")
    assert seen["server"] == "secure" and seen["sni"] == "secure.external.test"
    assert seen["path"] == "/originated"
    egress.apply(originate("originate-secure", "secure.external.test", 80,
                           f"{{mode: SIMPLE, caCertificates: {ca}, sni: chosen.sni.test}}"),
                 "secure-dr.yaml")
    seen = wait_for(lambda: (a := _json_answer(egress, url)) and a["sni"] == "chosen.sni.test"
                    and a, 30, what="the DestinationRule's sni")
    assert seen["server"] == "secure"
    # A CA that did not sign the server's certificate: the sidecar refuses the server.
    wrong_ca, _ = egress.pki.cert("client")
    egress.apply(originate("originate-secure", "secure.external.test", 80,
                           f"{{mode: SIMPLE, caCertificates: {wrong_ca}}}"), "secure-dr.yaml")
    wait_for(lambda: egress.get(url)[0] == 503, 30, what="an unverifiable server refused")
    egress.mesh.delete_file(rule)
    egress.mesh.delete_file(entry)


def test_tls_origination_mutual_with_client_certificate_files(egress: EgressMesh) -> None:
    cert, key = egress.pki.cert("client")
    ca = egress.pki.ca
    entry = egress.apply(tls_service_entry("mutual", "mutual.external.test", egress.mutual.port),
                         "mutual-se.yaml")
    url = "http://mutual.external.test/mutual"
    rule = egress.apply(originate("originate-mutual", "mutual.external.test", 80,
                                  f"{{mode: SIMPLE, caCertificates: {ca}}}"), "mutual-dr.yaml")
    # SIMPLE offers no client certificate: the server refuses the handshake.
    wait_for(lambda: egress.get(url)[0] == 503, 30, what="SIMPLE refused by a mutual server")
    egress.apply(originate("originate-mutual", "mutual.external.test", 80,
                           f"{{mode: MUTUAL, clientCertificate: {cert}, privateKey: {key}, "
                           f"caCertificates: {ca}}}"), "mutual-dr.yaml")
    seen = wait_for(lambda: _json_answer(egress, url), 30, what="TLS origination (MUTUAL)")
    assert seen["server"] == "mutual" and seen["sni"] == "mutual.external.test"
    egress.mesh.delete_file(rule)
    egress.mesh.delete_file(entry)


GATEWAY_ORIGINATION_YAML = """\
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway-secure}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: [secure.external.test]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: egressgateway-for-secure}
spec:
  host: istio-egressgateway.istio-system.svc.cluster.local
  subsets:
  - name: secure
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: direct-secure-through-egress-gateway}
spec:
  hosts: [secure.external.test]
  gateways: [istio-egressgateway-secure, mesh]
  http:
  - match:
    - gateways: [mesh]
      port: 80
    route:
    - destination:
        host: istio-egressgateway.istio-system.svc.cluster.local
        subset: secure
        port: {number: 80}
  - match:
    - gateways: [istio-egressgateway-secure]
      port: 80
    route:
    - destination:
        host: secure.external.test
        port: {number: 443}
"""


def test_tls_origination_at_the_egress_gateway(egress: EgressMesh) -> None:
    entry = egress.apply(tls_service_entry("secure", "secure.external.test", egress.secure.port),
                         "secure-se.yaml")
    routing = egress.apply(GATEWAY_ORIGINATION_YAML, "secure-egress.yaml")
    rule = egress.apply(originate("originate-secure-443", "secure.external.test", 443,
                                  f"{{mode: SIMPLE, sni: secure.external.test, "
                                  f"caCertificates: {egress.pki.ca}}}"), "secure-443-dr.yaml")
    url = "http://secure.external.test/through-gateway"
    seen = wait_for(lambda: _json_answer(egress, url), 30, what="TLS origination at the gateway")
    assert seen["server"] == "secure" and seen["sni"] == "secure.external.test"
    egw_admin = int(egress.gateway("istio-egressgateway-0")["admin_port"])
    tls_cluster = "outbound|443||secure.external.test"
    egw_cluster = "outbound|80|secure|istio-egressgateway.istio-system.svc.cluster.local"
    before = (counter(egress.client_admin, f"cluster.{egw_cluster}.upstream_rq_total"),
              counter(egw_admin, f"cluster.{tls_cluster}.upstream_rq_total"),
              counter(egw_admin, f"cluster.{tls_cluster}.ssl.handshake"))
    for _ in range(3):
        assert _json_answer(egress, url) is not None
    after = (counter(egress.client_admin, f"cluster.{egw_cluster}.upstream_rq_total"),
             counter(egw_admin, f"cluster.{tls_cluster}.upstream_rq_total"),
             counter(egw_admin, f"cluster.{tls_cluster}.ssl.handshake"))
    assert after[0] - before[0] == 3, "sidecar → egress gateway"
    assert after[1] - before[1] == 3, "egress gateway → external host"
    assert counter(egw_admin, f"cluster.{tls_cluster}.ssl.handshake") >= 1
    for path in (rule, routing, entry):
        egress.mesh.delete_file(path)


def test_https_passthrough_to_an_external_host(egress: EgressMesh) -> None:
    entry = egress.apply(tls_service_entry("secure", "secure.external.test", egress.secure.port),
                         "secure-se.yaml")

    def local_port() -> int | None:
        sidecar = egress.instance("client-0")["sidecar"]
        return next((int(o["local_port"]) for o in sidecar.get("outbound") or ()
                     if o["hostname"] == "secure.external.test" and o["port"] == 443), None)

    port = wait_for(local_port, 30, what="the client's local port for secure.external.test:443")
    context = ssl.create_default_context(cafile=str(egress.pki.ca))
    context.load_cert_chain(*egress.pki.cert("client"))  # the mutual server asks for one

    def fetch(sni: str) -> dict[str, Any] | None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=sni) as tls:
            tls.sendall(f"GET /passthrough HTTP/1.1\r\nHost: {sni}\r\n"
                        "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return json.loads(body) if head.startswith(b"HTTP/1.1 200") else None

    seen = wait_for(lambda: fetch("secure.external.test"), 30,
                    what="the app's own TLS through its sidecar")
    assert seen["server"] == "secure" and seen["sni"] == "secure.external.test"
    # `tls:` routes by SNI: another name on the same listener goes where its rule says.
    other = egress.apply(tls_service_entry("mutual", "mutual.external.test", egress.mutual.port),
                         "mutual-se.yaml")
    assert fetch("mutual.external.test")["server"] == "secure"  # type: ignore[index]
    routing = egress.apply(SNI_ROUTING_YAML, "sni-routing.yaml")
    seen = wait_for(lambda: (a := fetch("mutual.external.test")) and a["server"] == "mutual"
                    and a, 30, what="the tls: route for SNI mutual.external.test")
    assert seen["sni"] == "mutual.external.test"
    assert fetch("secure.external.test")["server"] == "secure"  # type: ignore[index]
    for path in (routing, other, entry):
        egress.mesh.delete_file(path)


SNI_ROUTING_YAML = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-sni}
spec:
  hosts: [secure.external.test]
  tls:
  - match:
    - port: 443
      sniHosts: [mutual.external.test]
    route:
    - destination: {host: mutual.external.test, port: {number: 443}}
  - match:
    - port: 443
      sniHosts: [secure.external.test]
    route:
    - destination: {host: secure.external.test, port: {number: 443}}
"""


def test_wildcard_hosts_with_resolution_none_under_registry_only(egress: EgressMesh) -> None:
    port = egress.external.port
    entry = egress.apply(f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: wildcard}}
spec:
  hosts: ["*.localhost"]
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  resolution: NONE
  location: MESH_EXTERNAL
""", "wildcard-se.yaml")
    mesh_config = egress.mesh.dir / "mesh.yaml"
    mesh_config.write_text("outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n")
    try:
        wait_for(lambda: egress.get(f"http://127.0.0.1:{port}/")[0] == 502, 30,
                 what="REGISTRY_ONLY in force")
        seen = wait_for(lambda: _json_answer(egress, f"http://api.localhost:{port}/wild"), 30,
                        what="a host the wildcard ServiceEntry registers")
        assert seen["path"] == "/wild" and seen["host"] == f"api.localhost:{port}"
        assert egress.get(f"http://api.localhost.example:{port}/")[0] == 502
    finally:
        mesh_config.unlink()
        egress.mesh.delete_file(entry)


def test_static_endpoints_with_weights_labels_and_subsets(egress: EgressMesh) -> None:
    a, b = egress.external.port, egress.other.port
    entry = egress.apply(f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: weighted}}
spec:
  hosts: [weighted.external.test]
  addresses: [240.0.0.7]
  ports: [{{number: 80, name: http, protocol: HTTP}}]
  resolution: STATIC
  endpoints:
  - {{address: 127.0.0.1, ports: {{http: {a}}}, weight: 3, labels: {{side: a}}}}
  - {{address: 127.0.0.1, ports: {{http: {b}}}, weight: 1, labels: {{side: b}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: weighted}}
spec:
  host: weighted.external.test
  trafficPolicy: {{loadBalancer: {{simple: ROUND_ROBIN}}}}
  subsets:
  - {{name: b, labels: {{side: b}}}}
""", "weighted-se.yaml")
    url = "http://weighted.external.test/w"
    wait_for(lambda: _json_answer(egress, url), 30, what="the STATIC ServiceEntry")
    servers = [(_json_answer(egress, url) or {}).get("server") for _ in range(400)]
    share = servers.count("plain") / len(servers)
    # Weights 3:1 → 0.75 (one standard deviation is 0.022 over 400); equal weights would give 0.5.
    assert 0.66 <= share <= 0.84, (share, servers.count("other"))
    assert servers.count("plain") + servers.count("other") == 400
    # The ServiceEntry's address stands for it as a VIP does.
    assert (_json_answer(egress, "http://240.0.0.7/vip") or {}).get("path") == "/vip"
    routing = egress.apply("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: weighted}
spec:
  hosts: [weighted.external.test]
  http:
  - route:
    - destination: {host: weighted.external.test, subset: b}
""", "weighted-vs.yaml")

    def only_b() -> bool:
        return all((_json_answer(egress, url) or {}).get("server") == "other" for _ in range(5))

    wait_for(only_b, 30, what="the subset of the endpoints labelled side=b")
    for path in (routing, entry):
        egress.mesh.delete_file(path)


def tls_secret(name: str, namespace: str, pki: Pki) -> str:
    """A kubernetes.io/tls Secret with the test client's certificate, key and the CA."""
    cert, key = pki.cert("client")

    def block(path: Path) -> str:
        return "".join(f"    {line}\n" for line in path.read_text().splitlines())

    return (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        f"type: kubernetes.io/tls\nstringData:\n  tls.crt: |\n{block(cert)}"
        f"  tls.key: |\n{block(key)}  ca.crt: |\n{block(pki.ca)}"
    )


def test_mutual_tls_origination_with_credential_name(egress: EgressMesh) -> None:
    entry = egress.apply(tls_service_entry("mutual", "mutual.external.test", egress.mutual.port),
                         "mutual-se.yaml")
    secret = egress.apply(tls_secret("client-credential", "default", egress.pki),
                          "client-secret.yaml")
    rule = egress.apply(originate("originate-mutual", "mutual.external.test", 80,
                                  "{mode: MUTUAL, credentialName: client-credential}"),
                        "mutual-dr.yaml")
    url = "http://mutual.external.test/credential"
    seen = wait_for(lambda: _json_answer(egress, url), 30,
                    what="MUTUAL origination with the Secret's certificate at the sidecar")
    assert seen["server"] == "mutual" and seen["sni"] == "mutual.external.test"
    # The sidecar got the Secret over SDS; proxy-config never shows its key.
    dump = egress.mesh.ratline("proxy-config", "secret", "client-0", "--mesh",
                               str(egress.mesh.dir), "-o", "json", check=False)
    assert "PRIVATE KEY" not in dump.stdout + dump.stderr
    for path in (rule, secret, entry):
        egress.mesh.delete_file(path)


def test_mutual_tls_origination_at_the_egress_gateway_with_credential_name(
    egress: EgressMesh,
) -> None:
    """Istio's "Egress Gateways with TLS Origination", mutual: the Secret in the gateway's
    namespace, the sidecar speaking plain HTTP to the gateway."""
    entry = egress.apply(tls_service_entry("mutual", "mutual.external.test", egress.mutual.port),
                         "mutual-se.yaml")
    secret = egress.apply(tls_secret("client-credential", "istio-system", egress.pki),
                          "gateway-secret.yaml")
    routing = egress.apply(GATEWAY_ORIGINATION_YAML.replace("secure.external.test",
                                                            "mutual.external.test"),
                           "mutual-egress.yaml")
    rule = egress.apply(originate("originate-mutual-443", "mutual.external.test", 443,
                                  "{mode: MUTUAL, credentialName: client-credential, "
                                  "sni: mutual.external.test}"), "mutual-443-dr.yaml")
    url = "http://mutual.external.test/gateway-credential"
    seen = wait_for(lambda: _json_answer(egress, url), 30, what="MUTUAL origination at the gateway")
    assert seen["server"] == "mutual" and seen["sni"] == "mutual.external.test"
    egw_admin = int(egress.gateway("istio-egressgateway-0")["admin_port"])
    assert counter(egw_admin, "cluster.outbound|443||mutual.external.test.upstream_rq_total") >= 1
    for path in (rule, routing, secret, entry):
        egress.mesh.delete_file(path)
