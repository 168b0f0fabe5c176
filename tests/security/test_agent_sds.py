"""The agent's SDS server over its real Unix socket: secrets for the asking node, held
until enrolled, and pushed again on rotation; plus the bootstrap that points Envoy at it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from ratline.agent.bootstrap import BootstrapParams, build_bootstrap
from ratline.agent.identity import renew_at
from ratline.agent.sds import SECRET_TYPE, SdsServer, SecretStore


def _secrets(response: discovery_pb2.DiscoveryResponse) -> dict[str, secret_pb2.Secret]:
    result = {}
    for packed in response.resources:
        secret = secret_pb2.Secret()
        packed.Unpack(secret)
        result[secret.name] = secret
    return result


async def test_sds_serves_holds_and_pushes(tmp_path: Path) -> None:
    store = SecretStore()
    server = SdsServer(store, tmp_path / "sds.sock")
    await server.start()
    assert (tmp_path / "sds.sock").stat().st_mode & 0o777 == 0o600
    requests: asyncio.Queue[discovery_pb2.DiscoveryRequest | None] = asyncio.Queue()

    async def feed() -> AsyncIterator[discovery_pb2.DiscoveryRequest]:
        while (item := await requests.get()) is not None:
            yield item

    try:
        async with grpc.aio.insecure_channel(f"unix:{tmp_path / 'sds.sock'}") as channel:
            stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
            call = stub.StreamSecrets(feed())
            await requests.put(discovery_pb2.DiscoveryRequest(
                node=base_pb2.Node(id="node-a"), type_url=SECRET_TYPE,
                resource_names=["default", "ROOTCA"],
            ))
            first = asyncio.ensure_future(call.read())
            await asyncio.sleep(0.2)
            assert not first.done(), "no secrets before the node is enrolled"
            await store.put("node-b", "B-CHAIN", "B-KEY", "ROOT")
            await asyncio.sleep(0.1)
            assert not first.done(), "another node's secrets are not sent"
            await store.put("node-a", "A-CHAIN", "A-KEY", "ROOT")
            response = await asyncio.wait_for(first, 5)
            secrets = _secrets(response)
            assert secrets["default"].tls_certificate.certificate_chain.inline_bytes == b"A-CHAIN"
            assert secrets["default"].tls_certificate.private_key.inline_bytes == b"A-KEY"
            assert secrets["ROOTCA"].validation_context.trusted_ca.inline_bytes == b"ROOT"
            await requests.put(discovery_pb2.DiscoveryRequest(
                type_url=SECRET_TYPE, resource_names=["default", "ROOTCA"],
                version_info=response.version_info, response_nonce=response.nonce,
            ))
            await store.put("node-a", "A-CHAIN-2", "A-KEY-2", "ROOT")
            rotated = _secrets(await asyncio.wait_for(call.read(), 5))
            assert rotated["default"].tls_certificate.certificate_chain.inline_bytes == (
                b"A-CHAIN-2"
            )
            await requests.put(None)
    finally:
        await server.stop()
    assert not (tmp_path / "sds.sock").exists()


def test_renewal_at_half_life() -> None:
    assert renew_at(1000.0, 1060.0) == 1030.0
    assert renew_at(1000.0, 900.0) == 1000.0


def test_bootstrap_points_envoy_at_sds_and_secures_xds() -> None:
    plain = build_bootstrap(BootstrapParams("n", "c", "127.0.0.1", 1, 2))
    assert [c["name"] for c in plain["static_resources"]["clusters"]] == ["xds-grpc"]
    secured = build_bootstrap(
        BootstrapParams("n", "c", "127.0.0.1", 1, 2, sds_socket="/s.sock", xds_tls=True)
    )
    xds, sds = secured["static_resources"]["clusters"]
    assert sds["name"] == "sds-grpc"
    endpoint = sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    assert endpoint["address"] == {"pipe": {"path": "/s.sock"}}
    context = xds["transport_socket"]["typed_config"]
    assert context["sni"] == "istiod.istio-system.svc"
    common = context["common_tls_context"]
    assert common["tls_certificate_sds_secret_configs"][0]["name"] == "default"
    assert common["combined_validation_context"]["validation_context_sds_secret_config"][
        "name"] == "ROOTCA"
