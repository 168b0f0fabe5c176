"""The pod agent's pieces: its config from the injected environment, app probes."""

from __future__ import annotations

import asyncio
import json

import pytest

from ratline.agent.pod_config import PodAgentConfig, PodAgentConfigError
from ratline.agent.pod_health import run_probe
from ratline.kube.injection import InjectionParams, inject
from tests.helpers import free_port

FIELDS = {"metadata.name": "reviews-1", "metadata.namespace": "bookinfo",
          "status.podIP": "10.245.0.7", "spec.serviceAccountName": "bookinfo-reviews",
          "status.hostIP": "10.245.0.1", "spec.nodeName": "node-1"}


def injected_env() -> dict[str, str]:
    """The environment the injected sidecar gets (the downward API resolved)."""
    pod = {"metadata": {"name": "reviews-1", "namespace": "bookinfo",
                        "labels": {"app": "reviews"},
                        "annotations": {"proxy.istio.io/config": "concurrency: 1\n"
                                        "terminationDrainDuration: 2s"}},
           "spec": {"containers": [{"name": "reviews", "image": "r",
                                    "readinessProbe": {"tcpSocket": {"port": 9080}}}]}}
    params = InjectionParams(image="i", xds_address="10.245.0.1:15012",
                             ca_address="10.245.0.1:15013")
    proxy = inject(pod, params).pod["spec"]["initContainers"][1]
    return {e["name"]: e["value"] if "value" in e else FIELDS[e["valueFrom"]["fieldRef"]
            ["fieldPath"]] for e in proxy["env"]}


def test_config_from_the_injected_environment() -> None:
    config = PodAgentConfig.from_env(injected_env())
    assert config.node_id == "sidecar~10.245.0.7~reviews-1.bookinfo~bookinfo.svc.cluster.local"
    assert config.cluster == "reviews.bookinfo"
    assert config.xds == ("10.245.0.1", 15012)
    assert config.ca_address == "10.245.0.1:15013"
    assert config.metadata["INTERCEPTION_MODE"] == "REDIRECT"
    assert config.concurrency == 1 and config.drain_s == 2.0
    assert config.app_probers == {"/app-health/reviews/readyz": {"tcpSocket": {"port": 9080}}}


def test_missing_variables_are_named() -> None:
    env = injected_env()
    del env["INSTANCE_IP"]
    with pytest.raises(PodAgentConfigError, match="INSTANCE_IP is not set"):
        PodAgentConfig.from_env(env)
    env = injected_env()
    env["PROXY_CONFIG"] = json.dumps({"concurrency": 1})
    with pytest.raises(PodAgentConfigError, match="discoveryAddress"):
        PodAgentConfig.from_env(env)


def test_probes_reach_the_app_or_fail() -> None:
    async def scenario() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            assert (await run_probe({"tcpSocket": {"port": port}}))[0]
            assert (await run_probe({"httpGet": {"port": port, "path": "/h"}}))[0]
        closed = free_port()
        assert not (await run_probe({"tcpSocket": {"port": closed}}))[0]
        assert not (await run_probe({"httpGet": {"port": closed}}))[0]

    asyncio.run(scenario())


def test_router_mode_is_a_gateway_node() -> None:
    config = PodAgentConfig.from_env(injected_env(), "router")
    assert config.node_id == "router~10.245.0.7~reviews-1.bookinfo~bookinfo.svc.cluster.local"
    with pytest.raises(PodAgentConfigError, match="proxy type 'ingress'"):
        PodAgentConfig.from_env(injected_env(), "ingress")
