"""Sidecars in pods for real: injection by the webhook, iptables capture, the pod agent.

One control plane (as `istiod`, bound to the test node's bridge address so pods reach it)
serves the cluster; `PodNode` runs the injected pods in network namespaces (no kubelet:
see `tests.kube_pod_node`). Istio's Bookinfo manifest is applied unchanged to a labelled
namespace and its stored pods are checked injected; Istio's `details` Deployment and a
`sleep` pod then run for real in a namespace with mTLS STRICT: `sleep` calls `details`
by Service name and by cluster IP with no proxy settings, a direct connection to the
`details` pod's app port is refused, a Job's pod completes with its sidecar, a deleted
pod's agent drains, and with the webhook down pod creation does what failurePolicy says.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import wait_for
from tests.kube.ratline_on_kube import (
    BOOKINFO,
    BOOKINFO_NETWORKING,
    INJECTOR_CONFIGURATION,
    REPO,
    KubeControlPlane,
    control_plane_env,
    install,
    istio_file,
)
from tests.kube_cluster import KubeCluster
from tests.kube_pod_node import PodNode, http_ok

pytestmark = [pytest.mark.kube, pytest.mark.e2e, pytest.mark.timeout(600)]

MESH_NS = "injected"
BOOKINFO_NS = "bookinfo-injected"
PLAIN_NS = "not-injected"
APPS = REPO / "examples" / "bookinfo" / "apps"
ISTIO_IMAGE = "registry.istio.io/release/examples-bookinfo-{}:1.20.3"
IMAGES = {
    ISTIO_IMAGE.format("details-v1"): [sys.executable, str(APPS / "details.py")],
    ISTIO_IMAGE.format("ratings-v1"): [sys.executable, str(APPS / "ratings.py")],
    ISTIO_IMAGE.format("productpage-v1"): [sys.executable, str(APPS / "productpage.py")],
    **{
        ISTIO_IMAGE.format(f"reviews-{v}"): ["env", f"SERVICE_VERSION={v}", sys.executable,
                                             str(APPS / "reviews.py")]
        for v in ("v1", "v2", "v3")
    },
}
"""The node's local images: what each of Istio's Bookinfo images runs (Ratline's apps)."""
VERSION = re.compile(r'class="reviews" data-version="(v\d)"')
CALL = (
    "import sys, urllib.request\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "with opener.open(sys.argv[1], timeout=5) as r:\n"
    "    print(r.status, r.headers.get('x-envoy-upstream-service-time') is not None)\n"
    "    print(r.read().decode())\n"
)

SLEEP = f"""
apiVersion: v1
kind: ServiceAccount
metadata: {{name: sleep, namespace: {MESH_NS}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: sleep, namespace: {MESH_NS}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: sleep}}}}
  template:
    metadata: {{labels: {{app: sleep}}}}
    spec:
      serviceAccountName: sleep
      containers:
      - name: sleep
        image: local/sleep
        command: [sleep, infinity]
"""
STRICT = f"""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: {MESH_NS}}}
spec: {{mtls: {{mode: STRICT}}}}
"""
JOB = f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: once, namespace: {MESH_NS}}}
spec:
  backoffLimit: 0
  template:
    metadata: {{labels: {{app: once}}}}
    spec:
      restartPolicy: Never
      serviceAccountName: sleep
      containers:
      - name: call
        image: local/python
        command: [{sys.executable}, -c, {json.dumps(CALL)}, "http://details:9080/details/1"]
"""


def namespace(name: str, labels: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": name, "labels": labels}})


def details_manifest(ns: str) -> str:
    """Istio's Bookinfo `details` Service, ServiceAccount and Deployment, unchanged."""
    docs = [d for d in yaml.safe_load_all(istio_file(BOOKINFO)) if d]
    mine = [d for d in docs if "details" in d["metadata"]["name"]]
    for doc in mine:
        doc["metadata"]["namespace"] = ns
    return yaml.safe_dump_all(mine)


@pytest.fixture(scope="module")
def mesh(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[tuple[KubeControlPlane, PodNode]]:
    root = tmp_path_factory.mktemp("injection")
    install(kube_cluster)
    node = PodNode(kube_cluster, root, IMAGES, [str(Path(sys.executable).parent)])
    node.setup()
    cp = KubeControlPlane(kube_cluster, root / "cp",
                          control_plane_env(RATLINE_BIND_ADDRESS=node.bridge_ip))
    try:
        cp.start()
        wait_for(lambda: kube_cluster.kubectl(
            "get", "mutatingwebhookconfiguration", INJECTOR_CONFIGURATION,
            check=False).returncode == 0, timeout=30, what="the injector configuration")
        kube_cluster.apply(namespace(MESH_NS, {"istio-injection": "enabled"}))
        wait_for(lambda: kube_cluster.kubectl(
            "get", "configmap", "istio-ca-root-cert", "-n", MESH_NS,
            check=False).returncode == 0, timeout=30, what="istio-ca-root-cert")
        yield cp, node
    finally:
        node.teardown()
        cp.uninstall_webhook()
        cp.stop()
        # Gone before the next module: its config (e.g. DestinationRules) would show in the
        # xDS of the modules after it, which compare whole config dumps.
        namespaces = (MESH_NS, BOOKINFO_NS, PLAIN_NS)
        for ns in namespaces:
            kube_cluster.kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0",
                                 "--force", "--wait=false", check=False)
            kube_cluster.kubectl("delete", "namespace", ns, "--ignore-not-found",
                                 "--wait=false")
        wait_for(lambda: all(kube_cluster.kubectl("get", "namespace", ns,
                                                  check=False).returncode != 0
                             for ns in namespaces),
                 timeout=90, interval=0.5, what="the injection tests' namespaces deleted")


def create_retrying(cluster: KubeCluster, text: str, *args: str) -> None:
    """The API server picks a new webhook configuration up asynchronously: retry."""
    wait_for(lambda: cluster.apply(text, *args, check=False).returncode == 0, timeout=30,
             interval=0.5, what="kubectl apply")


def stored_pods(cluster: KubeCluster, ns: str, expected: int) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (lambda items: items if len(items) >= expected else None)(
            cluster.get_json("pods", "-n", ns)["items"]),
        timeout=60, interval=0.2, what=f"{expected} pods in {ns}")


def test_bookinfo_pods_injected_as_stored(
    kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode]
) -> None:
    kube_cluster.apply(namespace(BOOKINFO_NS, {"istio-injection": "enabled"}))
    kube_cluster.apply(namespace(PLAIN_NS, {}))
    create_retrying(kube_cluster, istio_file(BOOKINFO), "-n", BOOKINFO_NS)
    kube_cluster.apply(istio_file(BOOKINFO), "-n", PLAIN_NS)
    for pod in stored_pods(kube_cluster, BOOKINFO_NS, 6):
        spec = pod["spec"]
        init = [(c["name"], c.get("restartPolicy")) for c in spec.get("initContainers") or ()]
        assert init == [("istio-init", None), ("istio-proxy", "Always")], pod["metadata"]["name"]
        assert spec["initContainers"][0]["command"][:2] == ["ratline", "iptables"]
        assert "sidecar.istio.io/status" in pod["metadata"]["annotations"]
        assert pod["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
    for pod in stored_pods(kube_cluster, PLAIN_NS, 6):
        assert not pod["spec"].get("initContainers"), pod["metadata"]["name"]


def test_app_calls_by_name_and_cluster_ip_through_captured_sidecars(
    kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode]
) -> None:
    _, node = mesh
    kube_cluster.apply(STRICT)
    create_retrying(kube_cluster, details_manifest(MESH_NS))
    kube_cluster.apply(SLEEP)
    details = node.run_all(MESH_NS, 1, "app=details")
    sleep = node.run_all(MESH_NS, 1, "app=sleep")
    for name in [*details, *sleep]:
        node.wait_ready(MESH_NS, name)
    (sleep_pod,) = sleep
    (details_pod, details_ip), = details.items()
    cluster_ip = kube_cluster.get_json("service", "details", "-n", MESH_NS)["spec"]["clusterIP"]

    def call(url: str) -> Any:
        proc = node.exec(MESH_NS, sleep_pod, sys.executable, "-c", CALL, url)
        return proc if proc.returncode == 0 and proc.stdout.startswith("200 True") else None

    for url in ("http://details:9080/details/0", f"http://{cluster_ip}:9080/details/0",
                f"http://details.{MESH_NS}.svc.cluster.local:9080/details/0"):
        answer = wait_for(lambda url=url: call(url), timeout=30, interval=0.3, what=url)
        assert json.loads(answer.stdout.splitlines()[1])["id"] == 0
    # The details sidecar took the connections in over mTLS on virtualInbound.
    stats = node.exec(MESH_NS, details_pod, sys.executable, "-c",
                      "import urllib.request as u; print(u.build_opener(u.ProxyHandler({}))"
                      ".open('http://127.0.0.1:15000/stats').read().decode())").stdout
    counters = dict(line.split(": ", 1) for line in stats.splitlines() if ": " in line)
    assert int(counters["listener.0.0.0.0_15006.ssl.handshake"]) >= 1  # pooled upstream
    assert int(counters["cluster.inbound|9080||.upstream_rq_total"]) >= 3
    # The captured client reports Istio's metrics as a local sidecar does (source side).
    metrics = node.exec(MESH_NS, sleep_pod, sys.executable, "-c",
                        "import urllib.request as u; print(u.build_opener(u.ProxyHandler({}))"
                        ".open('http://127.0.0.1:15000/stats/prometheus').read().decode())").stdout
    to_details = [line for line in metrics.splitlines()
                  if line.startswith("envoy_istio_requests_total{") and 'reporter="source"' in line
                  and "details." in line and 'response_code="200"' in line]
    assert sum(float(line.rsplit(" ", 1)[1]) for line in to_details) >= 3, to_details
    # No bypass: straight to the app's port, from another pod or from the node, is captured
    # by the details pod's iptables and refused without mTLS.
    direct = node.exec(MESH_NS, sleep_pod, sys.executable, "-c", CALL,
                       f"http://{details_ip}:9080/details/0")
    assert direct.returncode != 0, direct.stdout
    assert not http_ok(f"http://{details_ip}:9080/details/0", timeout=3)
    assert http_ok(f"http://{details_ip}:15021/healthz/ready")  # the agent's own port


def test_bookinfo_routing_through_the_captured_path(
    kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode]
) -> None:
    """Istio's Bookinfo, unchanged, with Istio's request-routing task, all captured."""
    _, node = mesh
    kube_cluster.apply(istio_file(BOOKINFO), "-n", MESH_NS)
    started = node.run_all(MESH_NS, 5, "app in (productpage,reviews,ratings)")
    for name in started:
        node.wait_ready(MESH_NS, name)
    (sleep_pod,) = [n for (ns, n) in node.pods if ns == MESH_NS and n.startswith("sleep")]

    last: list[str] = [""]

    def version(user: str = "") -> str | None:
        url = "http://productpage:9080/productpage" + (f"?user={user}" if user else "")
        proc = node.exec(MESH_NS, sleep_pod, sys.executable, "-c", CALL, url)
        found = VERSION.search(proc.stdout) if proc.returncode == 0 else None
        last[0] = (proc.stdout + proc.stderr)[-600:]
        return found.group(1) if found else None

    def settles(expected: str, user: str = "", in_a_row: int = 5) -> None:
        streak = [0]

        def agreed() -> bool:
            streak[0] = streak[0] + 1 if version(user) == expected else 0
            return streak[0] >= in_a_row

        wait_for(agreed, timeout=60, interval=0.1, what=f"reviews {expected} for {user!r}")

    seen: set[str] = set()
    try:
        wait_for(lambda: seen.add(version() or "none") or seen >= {"v1", "v2", "v3"},
                 timeout=60, interval=0.05, what="every reviews version")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; seen {seen}; last answer: {last[0]}") from None
    networking = Path(BOOKINFO_NETWORKING)
    for task in ("destination-rule-all.yaml", "virtual-service-all-v1.yaml"):
        kube_cluster.apply(istio_file(networking / task), "-n", MESH_NS)
    settles("v1")
    kube_cluster.apply(istio_file(networking / "virtual-service-reviews-jason-v2-v3.yaml"),
                       "-n", MESH_NS)
    settles("v2", user="jason")
    settles("v3")


def test_a_job_completes_with_its_sidecar(
    kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode]
) -> None:
    _, node = mesh
    kube_cluster.apply(JOB)
    (pod,) = node.run_all(MESH_NS, 1, "app=once")
    kube_cluster.kubectl("wait", "--for=condition=Complete", "job/once", "-n", MESH_NS,
                         "--timeout=90s")
    running = node.pods[(MESH_NS, pod)]
    assert [c.exit_code for c in running.apps] == [0]
    assert [c.exit_code for c in running.sidecars] == [0]  # the agent drained and exited
    node.stop_pod(MESH_NS, pod)


def test_deleted_pod_drains_and_leaves_nothing(
    kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode]
) -> None:
    _, node = mesh
    name = next(n for (ns, n) in node.pods if ns == MESH_NS and n.startswith("reviews-v1"))
    pod = node.pods[(MESH_NS, name)]
    node.stop_pod(MESH_NS, name)
    assert [c.exit_code for c in pod.sidecars] == [0]
    assert "drained" in node.log(pod, "istio-proxy")
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True)
    netns = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
    assert pod.netns not in netns


def test_webhook_down_follows_failure_policy(
    kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode]
) -> None:
    cp, _ = mesh
    cp.stop()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late"},
           "spec": {"containers": [{"name": "app", "image": "local/sleep"}]}}
    refused = kube_cluster.kubectl("create", "-n", MESH_NS, "-f", "-", stdin=json.dumps(pod),
                                   check=False)
    assert refused.returncode != 0
    assert "failed calling webhook" in refused.stderr and "sidecar-injector" in refused.stderr
    # Pods the injector does not select are created as usual.
    created = kube_cluster.kubectl("create", "-n", PLAIN_NS, "-f", "-", stdin=json.dumps(pod),
                                   check=False)
    assert created.returncode == 0, created.stderr
