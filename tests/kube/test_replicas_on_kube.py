"""Two control plane replicas on one cluster: both serve xDS and sign with the same CA
(shared through a Secret); only the Lease holder writes (webhook configuration, status);
when it dies, the other takes over. The second runs with the in-cluster configuration, as
in a pod (a service-account directory, `KUBERNETES_SERVICE_HOST`/`_PORT`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from bench.adsclient import CHANNEL_OPTIONS, SimulatedProxy

from ratline.ca.identity import CONTROL_PLANE_HOST
from tests.helpers import wait_for
from tests.kube.bookinfo_on_kube import node_id, pod_token, sign_csr
from tests.kube.ratline_on_kube import (
    BOOKINFO,
    NAMESPACE,
    WEBHOOK_CONFIGURATION,
    KubeControlPlane,
    control_plane_env,
    install,
    istio_file,
)
from tests.kube_cluster import FakeNode, KubeCluster

pytestmark = [pytest.mark.kube, pytest.mark.e2e, pytest.mark.timeout(300)]

NS = "replicas"


@pytest.fixture(scope="module")
def replicas(
    kube_cluster: KubeCluster, fake_node: FakeNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[KubeControlPlane, KubeControlPlane, dict[str, Any]]]:
    install(kube_cluster, crds="ratline")
    kube_cluster.apply(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    )
    kube_cluster.kubectl(
        "apply", "-n", NS, "-l", "app=details", "-f", "-", stdin=istio_file(BOOKINFO)
    )
    kube_cluster.kubectl(
        "apply", "-n", NS, "-l", "account=details", "-f", "-", stdin=istio_file(BOOKINFO)
    )
    fake_node.run_all(NS, expected=1)
    pod = kube_cluster.get_json("pods", "-n", NS)["items"][0]
    work: Path = tmp_path_factory.mktemp("replicas")
    env = control_plane_env()
    first = KubeControlPlane(kube_cluster, work / "first", env).start()
    second = None
    try:
        wait_for(
            lambda: lease_holder(kube_cluster) == first.info["identity"],
            timeout=20,
            what="the first replica leading",
        )
        # The second replica runs as in a pod: --in-cluster, the service-account
        # directory and KUBERNETES_SERVICE_HOST/_PORT (its xDS, CA and takeover below).
        second = KubeControlPlane(kube_cluster, work / "second", env, in_cluster=True).start()
        assert second.info["cluster"].endswith("(in-cluster)"), second.info
        yield first, second, pod
    finally:
        for plane in (first, second):
            if plane is not None:
                plane.stop()
        first.uninstall_webhook()
        kube_cluster.kubectl("delete", "namespace", NS, "--wait=false")


def lease_holder(cluster: KubeCluster) -> str | None:
    proc = cluster.kubectl(
        "get", "lease", "ratline-leader", "-n", NAMESPACE, "-o", "json", check=False
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)["spec"].get("holderIdentity") or None


def webhook_url(cluster: KubeCluster) -> str:
    config = cluster.get_json("validatingwebhookconfiguration", WEBHOOK_CONFIGURATION)
    return str(config["webhooks"][0]["clientConfig"]["url"]).removesuffix("/validate")


def syncs(plane: KubeControlPlane, node: str, credentials: tuple[bytes, bytes, bytes]) -> bool:
    """One simulated proxy gets all four types from `plane` over mTLS."""

    async def run() -> bool:
        creds = grpc.ssl_channel_credentials(*credentials)
        options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", CONTROL_PLANE_HOST)]
        async with grpc.aio.secure_channel(plane.info["xds"], creds, options) as channel:
            proxy = SimulatedProxy(channel, node, "delta", False)
            task = asyncio.create_task(proxy.run())
            try:
                await asyncio.wait_for(proxy.synced.wait(), 20)
                return True
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    return asyncio.run(run())


def test_both_serve_xds_with_one_ca_and_one_leader_writes(
    kube_cluster: KubeCluster, replicas: Any
) -> None:
    first, second, pod = replicas
    assert first.trust_bundle.read_text() == second.trust_bundle.read_text()
    status, answer, key = sign_csr(first, pod_token(kube_cluster, pod), NS, "bookinfo-details")
    assert status == 200, answer
    credentials = (answer["root_cert"].encode(), key, answer["cert_chain"].encode())
    assert syncs(first, node_id(pod), credentials)
    assert syncs(second, node_id(pod), credentials)  # a certificate of the first one's CA
    assert lease_holder(kube_cluster) == first.info["identity"]
    assert webhook_url(kube_cluster) == first.info["webhook"]


def test_the_other_replica_takes_over_when_the_leader_dies(
    kube_cluster: KubeCluster, replicas: Any
) -> None:
    first, second, _pod = replicas
    assert first.proc is not None
    first.proc.kill()  # a crash: the Lease is not released, it must expire
    first.proc.wait(timeout=10)
    wait_for(
        lambda: lease_holder(kube_cluster) == second.info["identity"],
        timeout=30,
        what="the second replica holding the Lease",
    )
    wait_for(
        lambda: webhook_url(kube_cluster) == second.info["webhook"],
        timeout=20,
        what="the webhook configuration pointing at the new leader",
    )
    proc = kube_cluster.apply(f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: details, namespace: {NS}}}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {{host: details, subset: v9}}
""")
    assert "subset 'v9'" in proc.stderr  # the new leader's webhook answered

    def status() -> Any:
        found = kube_cluster.get_json("virtualservice", "details", "-n", NS).get("status") or {}
        return found if found.get("validationMessages") else None

    written = wait_for(status, timeout=20, what="status written by the new leader")
    assert any(m["type"]["code"] == "IST0101" for m in written["validationMessages"])
