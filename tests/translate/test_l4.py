"""Translation of `tcp:`/`tls:` rules, local outbound listeners, TCP inbound and TCP/TLS
gateway servers: the generated config, and real Envoy accepting it (`--mode validate`).

The end-to-end proof is `tests/e2e/test_tcp_traffic.py`; these pin down the rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from ratline.api import load_text
from ratline.api.schemas.meshconfig import MeshConfig
from ratline.model.build import build_snapshot
from ratline.registry.instances import (
    InstancePort,
    LocalOutbound,
    ProxyKind,
    SidecarPorts,
    WorkloadInstance,
)
from ratline.settings import Settings
from ratline.translate.common import Findings
from ratline.translate.generator import MeshGenerator
from ratline.translate.tcp_routes import (
    L4Chain,
    L4Context,
    L4Destination,
    first_match_wins,
    rule_chains,
)
from tests.translate.static_config import validate, write_bootstrap

ENVOY = Settings.from_env().envoy
TCP_ECHO = "tcp-echo.default.svc.cluster.local"

MESH = """\
apiVersion: v1
kind: Service
metadata: {name: tcp-echo}
spec:
  selector: {app: tcp-echo}
  ports: [{name: tcp, port: 9000}, {name: tcp-other, port: 9001}]
---
apiVersion: v1
kind: Service
metadata: {name: greeter}
spec:
  selector: {app: greeter}
  ports: [{name: grpc, port: 50051}]
---
apiVersion: v1
kind: Service
metadata: {name: tls-echo}
spec:
  selector: {app: tls-echo}
  ports: [{name: tls, port: 9443}]
---
apiVersion: v1
kind: Service
metadata: {name: private, namespace: other}
spec:
  selector: {app: private}
  ports: [{name: tcp, port: 7000}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db}
spec:
  hosts: [db.example.com]
  addresses: [10.1.2.3]
  ports: [{number: 5432, name: tcp, protocol: tcp}]
  resolution: DNS
  exportTo: ["*"]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: tcp-echo}
spec:
  host: tcp-echo
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
"""

OUTBOUND = (
    LocalOutbound(TCP_ECHO, 9000, 30000),
    LocalOutbound(TCP_ECHO, 9001, 30001),
    LocalOutbound("greeter.default.svc.cluster.local", 50051, 30002),
    LocalOutbound("tls-echo.default.svc.cluster.local", 9443, 30003),
    LocalOutbound("private.other.svc.cluster.local", 7000, 30004),
    LocalOutbound("db.example.com", 5432, 30005),
)


def _instances() -> list[WorkloadInstance]:
    client = WorkloadInstance(
        name="client-0",
        namespace="default",
        workload="client",
        labels={"app": "client"},
        ports=(InstancePort(8000, 31000, 31001, name="http"),),
        sidecar=SidecarPorts(outbound_port=31002, admin_port=0, outbound=OUTBOUND),
    )
    echo = WorkloadInstance(
        name="tcp-echo-v1-0",
        namespace="default",
        workload="tcp-echo-v1",
        labels={"app": "tcp-echo", "version": "v1"},
        ports=(InstancePort(9000, 32000, 32001, name="tcp"),),
        sidecar=SidecarPorts(outbound_port=32002, admin_port=0),
    )
    gateway = WorkloadInstance(
        name="istio-ingressgateway-0",
        namespace="istio-system",
        workload="istio-ingressgateway",
        labels={"istio": "ingressgateway"},
        kind=ProxyKind.ROUTER,
    )
    return [client, echo, gateway]


def generator(extra: str = "") -> MeshGenerator:
    loaded = load_text(MESH + extra, "l4.yaml")
    loaded.raise_for_errors()
    snapshot = build_snapshot(loaded.resources, _instances(), MeshConfig(), "v1", "c1")
    return MeshGenerator(snapshot, Settings.from_env())


def node(name: str) -> str:
    return next(i.node_id for i in _instances() if i.name == name)


def listeners_of(gen: MeshGenerator, instance: str) -> dict[str, Any]:
    resources = gen.protos_for(node(instance))
    assert resources is not None
    return {listener.name: listener for listener in resources.listeners}


def tcp_proxy(chain: Any) -> tcp_proxy_pb2.TcpProxy:
    proxy = tcp_proxy_pb2.TcpProxy()
    assert chain.filters[-1].typed_config.Unpack(proxy), chain
    return proxy


# ---- rule evaluation ---------------------------------------------------------------------


def _context(gen: MeshGenerator, **overrides: Any) -> L4Context:
    values: dict[str, Any] = {
        "snapshot": gen.snapshot,
        "gateway": "mesh",
        "port": 9000,
        "proxy_namespace": "default",
        "proxy_labels": {"app": "client"},
        "findings": Findings(),
        "service": gen.snapshot.services[TCP_ECHO],
    }
    values.update(overrides)
    return L4Context(**values)


RULES = """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - match: [{port: 9001}]
    route: [{destination: {host: tcp-echo, port: {number: 9001}, subset: v2}}]
  - match: [{sourceLabels: {app: nobody}}, {sourceNamespace: elsewhere}]
    route: [{destination: {host: tcp-echo, subset: v2}}]
  - match: [{sourceSubnet: 10.0.0.0/8}]
    route: [{destination: {host: tcp-echo, subset: v2}}]
  - match: [{destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: tcp-echo, subset: v2}}]
  - route:
    - {destination: {host: tcp-echo, subset: v1}, weight: 75}
    - {destination: {host: tcp-echo, subset: v2}, weight: 25}
    - {destination: {host: tcp-echo, subset: v2}, weight: 0}
  - route: [{destination: {host: tcp-echo, subset: v2}}]
"""


def test_rules_decided_for_the_proxy_and_the_connection() -> None:
    gen = generator(RULES)
    vs = gen.snapshot.virtual_services[0]
    ctx = _context(gen)
    chains = first_match_wins(rule_chains(ctx, [vs], "tcp"), None)
    # port 9001 and the source rules do not apply to this proxy on port 9000; the
    # destinationSubnets rule never matches a Service (no address here), and says so;
    # the weighted rule matches everything, so the last rule is dropped.
    assert [(c.source_prefixes, c.destinations) for c in chains] == [
        (("10.0.0.0/8",), (L4Destination(f"outbound|9000|v2|{TCP_ECHO}"),)),
        (
            (),
            (
                L4Destination(f"outbound|9000|v1|{TCP_ECHO}", 75),
                L4Destination(f"outbound|9000|v2|{TCP_ECHO}", 25),
            ),
        ),
    ]
    assert any(
        "destinationSubnets never match" in m.message and m.code == "RAT0002"
        for m in ctx.findings.messages
    )
    on_9001 = first_match_wins(rule_chains(_context(gen, port=9001), [vs], "tcp"), None)
    assert on_9001[0].destinations == (L4Destination(f"outbound|9001|v2|{TCP_ECHO}"),)
    assert on_9001[0].matches_everything


def test_destination_subnets_hold_against_a_service_entry_address() -> None:
    gen = generator("""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db}
spec:
  hosts: [db.example.com]
  tcp:
  - match: [{destinationSubnets: [10.0.0.0/8]}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
""")
    vs = gen.snapshot.virtual_services[0]
    service = gen.snapshot.services["db.example.com"]
    chains = rule_chains(_context(gen, port=5432, service=service), [vs], "tcp")
    assert [c.destinations[0].cluster for c in chains] == [f"outbound|9000||{TCP_ECHO}"]
    assert chains[0].matches_everything
    # At a gateway the connection's address decides: a destination prefix range.
    at_gateway = rule_chains(_context(gen, port=5432, service=None, gateway="mesh"), [vs], "tcp")
    assert at_gateway[0].destination_prefixes == ("10.0.0.0/8",)


def test_first_match_wins_drops_what_envoy_would_let_win_out_of_order() -> None:
    a = L4Destination("a")
    chains = [
        L4Chain("1", (a,), server_names=("x.example.com",)),
        L4Chain("2", (a,), server_names=("x.example.com",)),  # the same match: dropped
        L4Chain("3", (a,)),  # everything
        L4Chain("4", (a,), server_names=("y.example.com",)),  # after everything: dropped
    ]
    assert [c.name for c in first_match_wins(chains, L4Chain("default", (a,)))] == ["1", "3"]
    assert [c.name for c in first_match_wins(chains[:2], L4Chain("d", (a,)))] == ["1", "d"]


def test_tls_rules_match_sni_and_a_star_matches_any_name() -> None:
    gen = generator("""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tls-echo}
spec:
  hosts: [tls-echo]
  tls:
  - match: [{sniHosts: [a.example.com, "*.b.example.com"]}]
    route: [{destination: {host: tls-echo}}]
  - match: [{sniHosts: ["*"]}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
""")
    vs = gen.snapshot.virtual_services[0]
    service = gen.snapshot.services["tls-echo.default.svc.cluster.local"]
    chains = rule_chains(_context(gen, port=9443, service=service), [vs], "tls")
    assert [c.server_names for c in chains] == [("a.example.com", "*.b.example.com"), ()]


def test_no_weights_split_evenly_and_say_so() -> None:
    gen = generator("""---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp-echo}
spec:
  hosts: [tcp-echo]
  tcp:
  - route:
    - {destination: {host: tcp-echo, subset: v1}}
    - {destination: {host: tcp-echo, subset: v2}}
""")
    ctx = _context(gen)
    [chain] = rule_chains(ctx, [gen.snapshot.virtual_services[0]], "tcp")
    assert [d.weight for d in chain.destinations] == [1, 1]
    assert any(m.code == "RAT0004" for m in ctx.findings.messages)


# ---- listeners -----------------------------------------------------------------------------


def test_local_outbound_listeners_per_reported_service_port() -> None:
    gen = generator(RULES)
    found = listeners_of(gen, "client-0")
    tcp = found[f"{TCP_ECHO}_9000"]
    assert tcp.address.socket_address.port_value == 30000
    # The tcp: rules of the service's VirtualService, the weighted one last (everything).
    assert [len(tcp_proxy(c).weighted_clusters.clusters) for c in tcp.filter_chains] == [0, 2]
    other = found[f"{TCP_ECHO}_9001"]
    assert tcp_proxy(other.filter_chains[0]).cluster == f"outbound|9001|v2|{TCP_ECHO}"
    # A ServiceEntry host with an address, and its default chain.
    db = found["db.example.com_5432"]
    assert tcp_proxy(db.filter_chains[0]).cluster == "outbound|5432||db.example.com"
    # TLS: the TLS inspector reads the SNI.
    tls = found["tls-echo.default.svc.cluster.local_9443"]
    assert [f.name for f in tls.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    # gRPC: a connection manager routed by that service port's own RDS.
    grpc = found["greeter.default.svc.cluster.local_50051"]
    hcm = hcm_pb2.HttpConnectionManager()
    grpc.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    assert hcm.rds.route_config_name == "greeter.default.svc.cluster.local:50051"
    resources = gen.protos_for(node("client-0"))
    assert resources is not None
    routes = {r.name: r for r in resources.routes}
    grpc_routes = routes["greeter.default.svc.cluster.local:50051"]
    assert list(grpc_routes.virtual_hosts[0].domains) == ["*"]


def test_no_local_listener_for_a_service_the_proxy_may_not_see() -> None:
    gen = generator(RULES + """---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./*"]}]
""")
    found = listeners_of(gen, "client-0")
    assert "private.other.svc.cluster.local_7000" not in found
    assert f"{TCP_ECHO}_9000" in found


def test_tcp_ports_are_proxied_as_bytes_inbound_and_http_ones_are_not() -> None:
    gen = generator()
    echo = listeners_of(gen, "tcp-echo-v1-0")["inbound|9000||"]
    assert tcp_proxy(echo.filter_chains[0]).cluster == "inbound|9000||"
    client = listeners_of(gen, "client-0")["inbound|8000||"]
    hcm = "envoy.filters.network.http_connection_manager"
    assert client.filter_chains[0].filters[0].name == hcm


GATEWAY = """---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 15443, name: tls, protocol: TLS}
    tls: {mode: PASSTHROUGH}
    hosts: ["*.example.com"]
  - port: {number: 31400, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge}
spec:
  hosts: ["*.example.com"]
  gateways: [edge]
  tcp:
  - match: [{port: 31400}]
    route: [{destination: {host: tcp-echo, port: {number: 9000}}}]
  tls:
  - match: [{port: 15443, sniHosts: [a.example.com]}]
    route: [{destination: {host: tls-echo}}]
"""


def test_gateway_tcp_and_tls_passthrough_servers_listen_and_route() -> None:
    gen = generator(GATEWAY)
    found = listeners_of(gen, "istio-ingressgateway-0")
    tcp = found["0.0.0.0_31400"]
    assert tcp_proxy(tcp.filter_chains[0]).cluster == f"outbound|9000||{TCP_ECHO}"
    tls = found["0.0.0.0_15443"]
    assert list(tls.filter_chains[0].filter_chain_match.server_names) == ["a.example.com"]
    assert tcp_proxy(tls.filter_chains[0]).cluster == (
        "outbound|9443||tls-echo.default.svc.cluster.local"
    )
    # One port, one kind of server: the HTTP server on 31400 is refused, and said so.
    assert any(
        m.code == "RAT0003" and "31400" in m.message and m.field == "spec.servers[2].port"
        for m in gen.messages
    )


def test_envoy_accepts_the_l4_config(tmp_path: Path) -> None:
    gen = generator(RULES + GATEWAY)
    for instance in ("client-0", "tcp-echo-v1-0", "istio-ingressgateway-0"):
        resources = gen.protos_for(node(instance))
        assert resources is not None
        result = validate(ENVOY, write_bootstrap(tmp_path / f"{instance}.json", resources))
        assert result.returncode == 0, result.stdout + result.stderr


def test_tcp_inbound_takes_mutual_tls_like_http_inbound() -> None:
    loaded = load_text(MESH, "l4.yaml")
    snapshot = build_snapshot(loaded.resources, _instances(), MeshConfig(), "v1", "c1")
    gen = MeshGenerator(snapshot, Settings.from_env(), mtls=True)
    echo = listeners_of(gen, "tcp-echo-v1-0")["inbound|9000||"]
    # PERMISSIVE: an mTLS chain and a plain one, both proxying the bytes to the app.
    assert [c.filter_chain_match.transport_protocol for c in echo.filter_chains] == [
        "tls", "raw_buffer"
    ]
    assert {tcp_proxy(c).cluster for c in echo.filter_chains} == {"inbound|9000||"}
    assert echo.filter_chains[0].HasField("transport_socket")
