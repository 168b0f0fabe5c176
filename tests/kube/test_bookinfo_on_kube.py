"""Bookinfo on a real kube-apiserver, served by Ratline to real Envoys and a simulated fleet.

One cluster, Ratline's CRDs, Bookinfo applied with kubectl, pods made by the real
controller-manager and run by `FakeNode` (binding, status), EndpointSlices from the real
EndpointSlice controller; the control plane runs as the `istiod` service account with
`ratline manifest rbac`; real Envoys for the productpage pod (sidecar) and the ingress
gateway pod (router) get their certificates with their pods' service-account tokens.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from bench.adsclient import CHANNEL_OPTIONS, SimulatedProxy

from ratline.ca.identity import CONTROL_PLANE_HOST
from tests.helpers import wait_for
from tests.kube.bookinfo_on_kube import (
    BOOKINFO_NS,
    FLEET,
    FLEET_MANIFEST,
    GATEWAY_MANIFEST,
    PodProxies,
    Proxy,
    apply_every_sample,
    deploy_bookinfo,
    fleet_credentials,
    node_id,
    pod_named,
    pod_token,
    sign_csr,
    undeploy_bookinfo,
)
from tests.kube.local_equivalent import first_difference, reported_instance, with_namespace
from tests.kube.ratline_on_kube import (
    BOOKINFO,
    BOOKINFO_NETWORKING,
    NAMESPACE,
    REPO,
    KubeControlPlane,
    LocalControlPlane,
    control_plane_env,
    install,
    istio_file,
    ratline_cli,
)
from tests.kube_cluster import FakeNode, KubeCluster

pytestmark = [pytest.mark.kube, pytest.mark.e2e, pytest.mark.timeout(600)]

REVIEWS = f"reviews.{BOOKINFO_NS}.svc.cluster.local"
BAD_VS = REPO / "examples" / "bookinfo-samples" / "bad-virtual-service.yaml"


@dataclass
class Mesh:
    cluster: KubeCluster
    node: FakeNode
    cp: KubeControlPlane
    pods: dict[str, dict[str, Any]]
    proxies: PodProxies
    work: Path

    @property
    def productpage(self) -> Proxy:
        return self.proxies.proxies[0]

    @property
    def gateway(self) -> Proxy:
        return self.proxies.proxies[1]

    def pods_of(self, prefix: str) -> list[dict[str, Any]]:
        return [p for name, p in sorted(self.pods.items()) if name.startswith(prefix)]

    def refresh_pods(self) -> None:
        from tests.kube.bookinfo_on_kube import all_pods

        self.pods = all_pods(self.cluster)


@pytest.fixture(scope="module")
def mesh(
    kube_cluster: KubeCluster, fake_node: FakeNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Mesh]:
    work = tmp_path_factory.mktemp("bookinfo-on-kube")
    install(kube_cluster, crds="ratline")
    pods = deploy_bookinfo(kube_cluster, fake_node)
    cp = KubeControlPlane(kube_cluster, work / "cp", control_plane_env()).start()
    proxies = None
    try:
        proxies = PodProxies(
            kube_cluster,
            cp,
            work / "proxies",
            [
                (pod_named(pods, "productpage-v1"), "sidecar"),
                (pod_named(pods, "istio-ingressgateway"), "router"),
            ],
        )
        proxies.wait_ready()
        yield Mesh(kube_cluster, fake_node, cp, pods, proxies, work)
    finally:
        if proxies is not None:
            proxies.stop()
        cp.stop()
        cp.uninstall_webhook()
        undeploy_bookinfo(kube_cluster)


def reviews_ips(mesh: Mesh) -> dict[str, str]:
    return {p["metadata"]["name"]: p["status"]["podIP"] for p in mesh.pods_of("reviews-")}


# ---- config from the cluster ---------------------------------------------------------------


def test_envoys_get_bookinfo_from_the_cluster(mesh: Mesh) -> None:
    sidecar = mesh.productpage
    wanted = {f"{ip}:9080" for ip in reviews_ips(mesh).values()}
    wait_for(
        lambda: set(sidecar.endpoints(f"outbound|9080||{REVIEWS}")) == wanted,
        timeout=20,
        what="reviews' three pods in the sidecar's EDS",
    )
    assert all(h == "HEALTHY" for h in sidecar.endpoints(f"outbound|9080||{REVIEWS}").values())
    # Subsets from the DestinationRule, endpoints by the pods' version label.
    v2 = [p["status"]["podIP"] for p in mesh.pods_of("reviews-v2")]
    assert set(sidecar.endpoints(f"outbound|9080|v2|{REVIEWS}")) == {f"{ip}:9080" for ip in v2}
    # Locality from the Node's topology labels.
    assert sidecar.localities(f"outbound|9080||{REVIEWS}") == {"region-a/zone-a"}
    # The gateway (router node id) gets the Bookinfo Gateway's listener and routes.
    offset = int(mesh.cp.env["RATLINE_GATEWAY_PORT_OFFSET"])
    clusters = wait_for(
        lambda: mesh.gateway.route_clusters(f"http.{offset + 80}", "*"),
        timeout=20,
        what="the gateway's route configuration",
    )
    assert set(clusters) == {f"outbound|9080||productpage.{BOOKINFO_NS}.svc.cluster.local"}


def test_proxy_status_and_proxy_config_against_the_cluster(mesh: Mesh) -> None:
    out = wait_for(
        lambda: (lambda o: o if o.count("SYNCED") >= 8 else None)(
            mesh.cp.ratline("proxy-status").stdout
        ),
        timeout=20,
        what="both proxies SYNCED in proxy-status",
    )
    pod = mesh.productpage.pod["metadata"]["name"]
    assert pod in out and "istio-ingressgateway" in out
    routes = mesh.cp.ratline("proxy-config", "routes", f"{pod}.{BOOKINFO_NS}").stdout
    assert REVIEWS.split(".")[0] in routes
    status = mesh.cp.ratline("status").stdout
    assert "control plane (Kubernetes)" in status and "answering" in status
    assert mesh.cp.info["webhook"] in status


# ---- changes through kubectl ---------------------------------------------------------------


def test_every_istio_bookinfo_sample_applies_with_ratlines_crds(mesh: Mesh) -> None:
    mesh.cluster.apply(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "samples"}})
    )
    try:
        assert apply_every_sample(mesh.cluster, "samples") == {}
        kinds = {
            r["kind"]
            for r in mesh.cp.admin("/v1/resources")["resources"]
            if r["namespace"] == "samples"
        }
        assert {"VirtualService", "DestinationRule", "Gateway", "ServiceEntry"} <= kinds
    finally:
        # Waited for: its ServiceEntries (exportTo *) would reach later tests' proxies.
        mesh.cluster.kubectl("delete", "namespace", "samples", "--timeout=60s")
        mesh.cluster.kubectl(
            "delete",
            "-f",
            str(BOOKINFO_NETWORKING / "certmanager-gateway.yaml"),
            "--ignore-not-found",
        )


def test_virtual_service_applied_with_kubectl_reaches_envoys_and_the_fleet(mesh: Mesh) -> None:
    fleet_pods = mesh.pods_of("fleet-")
    assert len(fleet_pods) == FLEET
    root, key, chain = fleet_credentials(mesh.cluster, mesh.cp, fleet_pods[0])

    async def run() -> None:
        credentials = grpc.ssl_channel_credentials(root, key, chain)
        options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", CONTROL_PLANE_HOST)]
        async with grpc.aio.secure_channel(mesh.cp.info["xds"], credentials, options) as channel:
            fleet = [SimulatedProxy(channel, node_id(p), "delta", False) for p in fleet_pods]
            tasks = [asyncio.create_task(p.run()) for p in fleet]
            try:
                await asyncio.wait_for(asyncio.gather(*(p.synced.wait() for p in fleet)), 30)
                applied_at = time.monotonic()
                await asyncio.to_thread(
                    mesh.cluster.kubectl,
                    "apply",
                    "-n",
                    BOOKINFO_NS,
                    "-f",
                    str(BOOKINFO_NETWORKING / "virtual-service-reviews-v3.yaml"),
                )

                def routes_after(proxy: SimulatedProxy) -> bool:
                    return any(
                        t >= applied_at and kind == "RDS" for t, kind, _v in proxy.record.events
                    )

                deadline = time.monotonic() + 20
                while not all(routes_after(p) for p in fleet):
                    assert time.monotonic() < deadline, "the fleet did not all get the new routes"
                    assert all(p.record.error is None for p in fleet), [
                        p.record.error for p in fleet
                    ]
                    await asyncio.sleep(0.05)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())
    wait_for(
        lambda: (
            mesh.productpage.route_clusters("http_proxy", REVIEWS)
            == [f"outbound|9080|v3|{REVIEWS}"]
        ),
        timeout=20,
        what="the sidecar routing reviews to v3",
    )
    # What the fleet was sent is what the control plane holds for those proxies.
    dump = mesh.cp.admin(f"/v1/config-dump?node={node_id(fleet_pods[3])}&type=RDS")
    text = json.dumps(dump["resources"])
    assert f"outbound|9080|v3|{REVIEWS}" in text and f"outbound|9080|v1|{REVIEWS}" not in text


def test_unready_pod_leaves_eds_and_comes_back(mesh: Mesh) -> None:
    pod = mesh.pods_of("reviews-v2")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    cluster = f"outbound|9080||{REVIEWS}"
    mesh.node.set_ready(BOOKINFO_NS, name, False)
    wait_for(
        lambda: mesh.productpage.endpoints(cluster).get(f"{ip}:9080") == "UNHEALTHY",
        timeout=20,
        what="the unready pod marked unhealthy in the sidecar's EDS",
    )
    slices = mesh.cluster.get_json(
        "endpointslices", "-n", BOOKINFO_NS, "-l", "kubernetes.io/service-name=reviews"
    )["items"]
    conditions = {
        e["addresses"][0]: e["conditions"]["ready"] for s in slices for e in s["endpoints"]
    }
    assert conditions[ip] is False  # the controller-manager's view, which Ratline follows
    others = [h for a, h in mesh.productpage.endpoints(cluster).items() if a != f"{ip}:9080"]
    assert others == ["HEALTHY", "HEALTHY"]
    mesh.node.set_ready(BOOKINFO_NS, name, True)
    wait_for(
        lambda: mesh.productpage.endpoints(cluster).get(f"{ip}:9080") == "HEALTHY",
        timeout=20,
        what="the pod healthy again",
    )


def test_deleted_pod_is_replaced_in_eds(mesh: Mesh) -> None:
    pod = mesh.pods_of("reviews-v1")[0]
    name, ip = pod["metadata"]["name"], pod["status"]["podIP"]
    cluster = f"outbound|9080|v1|{REVIEWS}"
    mesh.node.delete(BOOKINFO_NS, name)
    wait_for(
        lambda: mesh.productpage.endpoints(cluster) == {},
        timeout=20,
        what="the deleted pod gone from EDS",
    )
    replacement = wait_for(
        lambda: [
            p
            for p in mesh.node.pods(BOOKINFO_NS, "app=reviews,version=v1")
            if p["metadata"]["name"] != name
        ],
        timeout=20,
        what="the ReplicaSet's replacement pod",
    )[0]
    new_ip = mesh.node.run(BOOKINFO_NS, replacement["metadata"]["name"])
    wait_for(
        lambda: mesh.productpage.endpoints(cluster) == {f"{new_ip}:9080": "HEALTHY"},
        timeout=20,
        what="the replacement pod in EDS",
    )
    assert new_ip != ip
    mesh.refresh_pods()


def test_bad_virtual_service_refused_by_kubectl_naming_the_field(mesh: Mesh) -> None:
    before = mesh.cluster.get_json("virtualservice", "reviews", "-n", BOOKINFO_NS)["spec"]
    proc = mesh.cluster.kubectl("apply", "-n", BOOKINFO_NS, "-f", str(BAD_VS), check=False)
    assert proc.returncode == 1
    assert 'admission webhook "validation.ratline.dev" denied the request' in proc.stderr
    assert (
        f"VirtualService {BOOKINFO_NS}/reviews: spec.http[0].route[0].weight: must be 0..100"
    ) in proc.stderr
    assert str(BAD_VS.name) in proc.stderr  # kubectl names the file
    # The same resource, field and message `ratline analyze` gives for the file.
    analyzed = ratline_cli("analyze", str(BAD_VS), check=False).stdout
    assert (
        "VirtualService default/reviews: spec.http[0].route[0].weight: must be 0..100" in analyzed
    )
    after = mesh.cluster.get_json("virtualservice", "reviews", "-n", BOOKINFO_NS)["spec"]
    assert after == before
    # kubectl applies each document on its own: the file's valid second one went in, with
    # the analyzer's finding as a warning.
    assert (
        "Warning: VirtualService bookinfo/ratings: spec.http[0].route[0].destination" in proc.stderr
    )
    mesh.cluster.kubectl("delete", "virtualservice", "ratings", "-n", BOOKINFO_NS)
    assert mesh.productpage.route_clusters("http_proxy", REVIEWS) == [f"outbound|9080|v3|{REVIEWS}"]


def test_status_shows_findings_and_analyze_k_reads_the_cluster(mesh: Mesh) -> None:
    ratings_v4 = f"""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ratings
  namespace: {BOOKINFO_NS}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {{host: ratings, subset: v4}}
"""
    proc = mesh.cluster.apply(ratings_v4)
    assert (
        "Warning: VirtualService bookinfo/ratings: spec.http[0].route[0].destination.subset"
        in proc.stderr
    )  # analyzer findings as admission warnings

    def status() -> dict[str, Any] | None:
        # The analyzers' findings and translation's come from two passes: wait for both.
        found = mesh.cluster.get_json("virtualservice", "ratings", "-n", BOOKINFO_NS)
        codes = {m["type"]["code"] for m in found.get("status", {}).get("validationMessages", ())}
        return found["status"] if {"IST0101", "RAT0002"} <= codes else None

    ratings = wait_for(status, timeout=20, what="IST0101 and RAT0002 in ratings' status")
    assert {
        "level": "ERROR",
        "type": {"code": "IST0101", "name": "ReferencedResourceNotFound"},
        "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
    } in ratings["validationMessages"]
    # Translation's own finding (the route to an undefined subset is not translated).
    assert {"level": "WARNING", "type": {"code": "RAT0002", "name": "Unresolved"}} in ratings[
        "validationMessages"
    ]
    condition = ratings["conditions"][0]
    assert condition["type"] == "Reconciled" and condition["status"] == "True"
    assert "spec.http[0].route[0].destination.subset: subset 'v4'" in condition["message"]
    reviews = mesh.cluster.get_json("virtualservice", "reviews", "-n", BOOKINFO_NS)
    assert reviews["status"]["validationMessages"] == []
    assert reviews["status"]["observedGeneration"] == reviews["metadata"]["generation"]
    # `ratline analyze -k` reads the cluster itself, as `istioctl analyze` does.
    kubeconfig = str(mesh.cluster.admin_kubeconfig)
    out = ratline_cli("analyze", "-k", "--kubeconfig", kubeconfig, check=False)
    assert out.returncode == 1, out.stdout + out.stderr
    assert (
        f"Error [IST0101] kubernetes, VirtualService {BOOKINFO_NS}/ratings: "
        "spec.http[0].route[0].destination.subset"
    ) in out.stdout
    mesh.cluster.kubectl("delete", "virtualservice", "ratings", "-n", BOOKINFO_NS)


# ---- identity ------------------------------------------------------------------------------


def test_csr_with_another_service_accounts_token_is_refused(mesh: Mesh) -> None:
    reviews, ratings = mesh.pods_of("reviews-v2")[0], mesh.pods_of("ratings-v1")[0]
    status, answer, _ = sign_csr(
        mesh.cp, pod_token(mesh.cluster, ratings), BOOKINFO_NS, "bookinfo-reviews"
    )
    assert status == 403, answer
    assert "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-ratings" in answer["errors"][0]["text"]
    unbound = mesh.cluster.token(BOOKINFO_NS, "bookinfo-reviews")  # the API server's audience
    status, answer, _ = sign_csr(mesh.cp, unbound, BOOKINFO_NS, "bookinfo-reviews")
    assert status == 401, answer
    status, answer, _ = sign_csr(
        mesh.cp, pod_token(mesh.cluster, reviews), BOOKINFO_NS, "bookinfo-reviews"
    )
    assert status == 200, answer


# ---- the API server goes away --------------------------------------------------------------


def test_apiserver_killed_and_restarted_mid_watch_loses_nothing(mesh: Mesh) -> None:
    sidecar = mesh.productpage
    mesh.cluster.kubectl(
        "apply", "-n", BOOKINFO_NS, "-f", str(BOOKINFO_NETWORKING / "virtual-service-all-v1.yaml")
    )
    mesh.cluster.kill_apiserver()
    try:
        # Meanwhile the last good state is served: the proxies stay in sync.
        status = mesh.cp.admin("/v1/proxy-status")
        assert all(
            t["state"] == "SYNCED"
            for p in status["proxies"]
            for k, t in p["types"].items()
            if k in ("CDS", "EDS")
        )
    finally:
        mesh.cluster.restart_apiserver()
    pod = mesh.pods_of("reviews-v3")[0]
    mesh.node.set_ready(BOOKINFO_NS, pod["metadata"]["name"], False)
    wait_for(
        lambda: sidecar.route_clusters("http_proxy", REVIEWS) == [f"outbound|9080|v1|{REVIEWS}"],
        timeout=30,
        what="the change applied just before the kill",
    )
    ip = pod["status"]["podIP"]
    wait_for(
        lambda: sidecar.endpoints(f"outbound|9080||{REVIEWS}").get(f"{ip}:9080") == "UNHEALTHY",
        timeout=30,
        what="the change made after the restart",
    )
    mesh.node.set_ready(BOOKINFO_NS, pod["metadata"]["name"], True)


# ---- the same mesh in local mode -----------------------------------------------------------


def test_same_xds_as_the_local_runtime_for_the_same_mesh(mesh: Mesh, tmp_path: Path) -> None:
    """The Kubernetes sources and the local ones (mesh directory + a runner's report)
    give every proxy the same xDS for the same mesh."""
    mesh.cluster.kubectl(
        "apply", "-n", BOOKINFO_NS, "-f", str(BOOKINFO_NETWORKING / "virtual-service-all-v1.yaml")
    )
    mesh.refresh_pods()
    mesh_dir = tmp_path / "mesh"
    mesh_dir.mkdir()
    samples = {
        "bookinfo.yaml": with_namespace(istio_file(BOOKINFO), BOOKINFO_NS, ("Deployment",)),
        "destination-rules.yaml": with_namespace(
            istio_file(BOOKINFO_NETWORKING / "destination-rule-all.yaml"), BOOKINFO_NS
        ),
        "gateway.yaml": with_namespace(
            istio_file(BOOKINFO_NETWORKING / "bookinfo-gateway.yaml").replace(
                "number: 8080", "number: 80"
            ),
            BOOKINFO_NS,
        ),
        "virtual-services.yaml": with_namespace(
            istio_file(BOOKINFO_NETWORKING / "virtual-service-all-v1.yaml"), BOOKINFO_NS
        ),
        "ingress.yaml": with_namespace(GATEWAY_MANIFEST, NAMESPACE, ("Deployment",)),
        "fleet.yaml": with_namespace(FLEET_MANIFEST, BOOKINFO_NS, ("Deployment",)),
        # The API server's own Service, which every cluster has.
        "kubernetes.yaml": yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default"},
                "spec": {
                    "ports": [{"name": "https", "port": 443, "targetPort": mesh.cluster.api_port}]
                },
            }
        ),
    }
    # The same Services have the same cluster IPs (as `kubectl get svc -o yaml` shows them):
    # route domains carry them.
    cluster_ips = {
        (svc["metadata"]["namespace"], svc["metadata"]["name"]): svc["spec"].get("clusterIP")
        for svc in mesh.cluster.get_json("services", "-A")["items"]
    }
    for name, text in samples.items():
        docs = [d for d in yaml.safe_load_all(text) if d]
        for doc in docs:
            meta = doc.get("metadata") or {}
            ip = cluster_ips.get((meta.get("namespace", "default"), meta.get("name")))
            if doc.get("kind") == "Service" and ip:
                doc["spec"]["clusterIP"] = ip
        (mesh_dir / name).write_text(yaml.safe_dump_all(docs))
    local = LocalControlPlane(mesh_dir, tmp_path / "local", mesh.cp.env).start()
    try:
        outbound = int(mesh.cp.env["RATLINE_KUBE_PROXY_OUTBOUND_PORT"])
        report = [
            reported_instance(p, outbound) for p in mesh.pods.values() if p["status"].get("podIP")
        ]
        local.put_instances(report)
        pods = [
            mesh.productpage.pod,
            mesh.gateway.pod,
            *mesh.pods_of("reviews-v2"),
            *mesh.pods_of("fleet-")[:2],
        ]
        nodes = [mesh.productpage.node_id, mesh.gateway.node_id, *(node_id(p) for p in pods[2:])]

        def dumps(cp: Any) -> dict[tuple[str, str], list[str]]:
            return {
                (node, kind): sorted(
                    (
                        json.dumps(r, sort_keys=True)
                        for r in cp.admin(f"/v1/config-dump?node={node}&type={kind}")["resources"]
                    ),
                )
                for node in nodes
                for kind in ("CDS", "LDS", "RDS", "EDS")
            }

        # Both sides are read afresh on every poll: the Kubernetes control plane may still be
        # pushing the VirtualService applied above when the first dump is taken.
        # The local control plane answers 404 for a node until it has taken the report.
        deadline = time.monotonic() + 30
        while True:
            try:
                kube, ours = dumps(mesh.cp), dumps(local)
            except urllib.error.HTTPError as err:
                if err.code != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
                continue
            differing = [key for key in kube if kube[key] != ours[key]]
            if not differing or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert not differing, first_difference(differing, kube, ours)
        assert all(kube[(n, "CDS")] and kube[(n, "LDS")] for n in nodes)
    finally:
        local.stop()


# ---- MeshConfig from Istio's ConfigMap -------------------------------------------------------


def _mesh_config_map(mesh_text: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "istio", "namespace": NAMESPACE},
                       "data": {"mesh": mesh_text}})


def test_mesh_config_comes_from_the_istio_config_map(mesh: Mesh) -> None:
    def access_logged() -> bool:
        listeners = [c for c in mesh.productpage.config_dump()["configs"]
                     if "dynamic_listeners" in c]
        return "access_loggers.stream.v3.StdoutAccessLog" in json.dumps(listeners)

    assert not access_logged()
    mesh.cluster.apply(_mesh_config_map("accessLogFile: /dev/stdout\n"))
    try:
        wait_for(access_logged, timeout=20, what="the sidecar's access log from MeshConfig")
        # A bad MeshConfig is refused and reported; the previous one stays in force.
        mesh.cluster.apply(_mesh_config_map("accessLogFile: 12\n"))

        def reported() -> list[dict[str, Any]]:
            return [m for m in mesh.cp.admin("/v1/analyze")["messages"]
                    if "ConfigMap istio-system/istio" in str(m["file"])]

        found = wait_for(reported, timeout=20, what="the refused MeshConfig in analyze")
        assert found[0]["field"] == "accessLogFile"
        assert access_logged()
    finally:
        mesh.cluster.kubectl("delete", "configmap", "istio", "-n", NAMESPACE)
    wait_for(lambda: not access_logged(), timeout=20, what="MeshConfig back to its defaults")
