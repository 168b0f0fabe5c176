"""A captured sidecar (INTERCEPTION_MODE REDIRECT): virtualOutbound with a hand-off
listener per service cluster IP and port, virtualInbound with the inbound chains by
port; real Envoy accepts it (`--mode validate`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ratline.api.loader import load_text
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from tests.translate import mesh
from tests.translate.static_config import validate, write_bootstrap


def captured_snapshot() -> object:
    snapshot = mesh.snapshot()
    instances = {}
    for node_id, inst in snapshot.instances.items():
        if inst.name == "productpage-v1-0":
            assert inst.sidecar is not None
            sidecar = dataclasses.replace(inst.sidecar, interception_mode="REDIRECT")
            ports = tuple(dataclasses.replace(p, inbound_port=p.container_port,
                                              app_port=p.container_port) for p in inst.ports)
            inst = dataclasses.replace(inst, sidecar=sidecar, ports=ports)
        instances[node_id] = inst
    services = {}
    for index, (host, svc) in enumerate(sorted(snapshot.services.items())):
        addresses = () if svc.origin == "ServiceEntry" else (f"10.96.0.{10 + index}",)
        services[host] = dataclasses.replace(svc, addresses=addresses)
    return dataclasses.replace(snapshot, instances=instances, services=services)


def test_captured_sidecar_listeners(tmp_path: Path) -> None:
    snapshot = captured_snapshot()
    generator = MeshGenerator(snapshot, Settings.from_env())  # type: ignore[arg-type]
    resources = generator.protos_for(mesh.node("productpage-v1-0"))
    assert resources is not None
    by_name = {listener.name: listener for listener in resources.listeners}
    assert "http_proxy" not in by_name
    outbound = by_name["virtualOutbound"]
    assert outbound.address.socket_address.port_value == 15001
    assert outbound.use_original_dst.value
    reviews_ip = snapshot.services["reviews.default.svc.cluster.local"].addresses[0]  # type: ignore[attr-defined]
    handoff = by_name[f"{reviews_ip}_9080"]
    assert not handoff.bind_to_port.value and handoff.address.socket_address.address == reviews_ip
    inbound = by_name["virtualInbound"]
    assert inbound.address.socket_address.port_value == 15006
    ports = {c.filter_chain_match.destination_port.value for c in inbound.filter_chains}
    assert ports == {9080}
    assert {f.name for f in inbound.listener_filters} >= {"envoy.filters.listener.original_dst"}
    cluster_names = {c.name for c in resources.clusters}
    assert {"PassthroughOriginalDst", "InboundPassthroughCluster"} <= cluster_names
    result = validate(Settings.from_env().envoy,
                      write_bootstrap(tmp_path / "envoy.json", resources))
    assert result.returncode == 0, result.stdout + result.stderr


def test_other_sidecars_keep_the_http_proxy_listener() -> None:
    generator = MeshGenerator(captured_snapshot(), Settings.from_env())  # type: ignore[arg-type]
    resources = generator.protos_for(mesh.node("reviews-v1-0"))
    assert resources is not None
    names = {listener.name for listener in resources.listeners}
    assert "http_proxy" in names and "virtualOutbound" not in names


STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
"""


def test_strict_passthrough_takes_mtls_only(tmp_path: Path) -> None:
    """Ports no Service declares pass through virtualInbound under the workload's mode:
    STRICT terminates mTLS there too (a plain-text client gets nothing), as Istio's."""
    base = captured_snapshot()
    node = mesh.node("productpage-v1-0")

    def passthrough(config: str) -> object:
        pas = tuple(load_text(config, "pa.yaml").resources) if config else ()
        snapshot = dataclasses.replace(
            base, extra={"PeerAuthentication": pas})  # type: ignore[type-var]
        generator = MeshGenerator(snapshot, Settings.from_env(), mtls=True)  # type: ignore[arg-type]
        resources = generator.protos_for(node)
        assert resources is not None
        inbound = next(x for x in resources.listeners if x.name == "virtualInbound")
        return inbound.default_filter_chain, resources

    strict, resources = passthrough(STRICT)
    assert strict.transport_socket.name == "envoy.transport_sockets.tls"  # type: ignore[attr-defined]
    assert strict.name == "InboundPassthroughCluster|mtls"  # type: ignore[attr-defined]
    result = validate(Settings.from_env().envoy,
                      write_bootstrap(tmp_path / "envoy.json", resources))  # type: ignore[arg-type]
    assert result.returncode == 0, result.stdout + result.stderr
    permissive, _ = passthrough("")
    assert not permissive.HasField("transport_socket")  # type: ignore[attr-defined]
