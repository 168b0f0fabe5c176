"""Sidecars in pods for real: injection by the webhook, iptables capture, the pod agent.

Ratline is installed with `helm install` of `charts/ratline` (gateways apart); one control
plane (as the chart's `istiod`, bound to the test node's bridge address so pods reach it,
the chart's webhook URLs pointing at it) serves the cluster; `PodNode` runs the injected
pods in network namespaces (no kubelet: see `tests.kube_pod_node`). Istio's Bookinfo
manifest is applied unchanged to a labelled namespace and its stored pods are checked
injected; Istio's `details` Deployment and a `sleep` pod then run for real in a namespace
with mTLS STRICT: `sleep` calls `details` by Service name and by cluster IP with no proxy
settings, a direct connection to the `details` pod's app port (or to a port no Service
declares) is refused, a Job's pod completes with its sidecar, a deleted pod's agent
drains, and with the webhook down pod creation does what failurePolicy says. The ingress
gateway is the chart's `gateways` part installed on its own; Istio's Bookinfo tasks
(traffic shifting, fault injection, timeouts, HTTPS with a Secret) run through it.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.tls_certs import https_get, make_ca, make_leaf
from tests.helpers import free_fixed_port, wait_for
from tests.kube.ingress_on_kube import (
    CONTROL_PLANE_NS,
    INGRESS_NS,
    Ingress,
    install_ingress,
    install_mesh_chart,
    sample,
    stored_gateway_pod,
    uninstall_ingress,
    uninstall_mesh_chart,
)
from tests.kube.injected_apps import IMAGES, create_retrying, details_manifest, namespace
from tests.kube.ratline_on_kube import (
    BOOKINFO,
    BOOKINFO_NETWORKING,
    INJECTOR_CONFIGURATION,
    KubeControlPlane,
    control_plane_env,
    istio_file,
)
from tests.kube_cluster import KubeCluster
from tests.kube_pod_node import PodNode, http_ok

pytestmark = [pytest.mark.kube, pytest.mark.e2e, pytest.mark.timeout(600)]

MESH_NS = "injected"
BOOKINFO_NS = "bookinfo-injected"
PLAIN_NS = "not-injected"
VERSION = re.compile(r'class="reviews" data-version="(v\d)"')
UNDECLARED_PORT = 9999
"""A port in the details pod that no Service or container port names."""
HTTPS_PORT = 8443
"""Where the gateway listens for the Gateway's port 443 (the chart's Service maps it so)."""
HTTPS_GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-https}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: bookinfo-credential}
    hosts: [bookinfo.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo-https}
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo-https]
  http:
  - route:
    - destination: {host: productpage, port: {number: 9080}}
"""
REVIEWS_UNAVAILABLE = "Sorry, product reviews are currently unavailable for this book."
RATINGS_UNAVAILABLE = "Ratings service is currently unavailable"
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


@pytest.fixture(scope="module")
def mesh(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory,
         ) -> Iterator[tuple[KubeControlPlane, PodNode]]:
    root = tmp_path_factory.mktemp("injection")
    node = PodNode(kube_cluster, root, IMAGES, [str(Path(sys.executable).parent)])
    node.setup()
    port = free_fixed_port()
    env = control_plane_env(
        RATLINE_BIND_ADDRESS=node.bridge_ip,
        RATLINE_KUBE_NAMESPACE=CONTROL_PLANE_NS,
        RATLINE_KUBE_WEBHOOK_PORT=str(port),
        # Pods have ports of their own: Istio's 80/443 → 8080/8443, as the chart's
        # Service maps them.
        RATLINE_GATEWAY_PORT_OFFSET="8000",
    )
    cp = KubeControlPlane(kube_cluster, root / "cp", env, CONTROL_PLANE_NS)
    try:
        install_mesh_chart(kube_cluster, f"https://{node.bridge_ip}:{port}")
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
        namespaces = (MESH_NS, BOOKINFO_NS, PLAIN_NS, INGRESS_NS)
        for ns in namespaces:
            kube_cluster.kubectl("delete", "pods", "--all", "-n", ns, "--grace-period=0",
                                 "--force", "--wait=false", check=False)
            kube_cluster.kubectl("delete", "namespace", ns, "--ignore-not-found",
                                 "--wait=false")
        wait_for(lambda: all(kube_cluster.kubectl("get", "namespace", ns,
                                                  check=False).returncode != 0
                             for ns in namespaces),
                 timeout=90, interval=0.5, what="the injection tests' namespaces deleted")
        uninstall_mesh_chart(kube_cluster)


@pytest.fixture(scope="module")
def ingress(kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode],
            ) -> Iterator[Ingress]:
    """The chart's ingress gateway, by `helm install`, its pod run by the node (the mesh
    fixture's teardown removes the namespace and the pod)."""
    try:
        yield install_ingress(kube_cluster, mesh[1])
    finally:
        uninstall_ingress(kube_cluster)


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
        answer = wait_for(functools.partial(call, url), timeout=30, interval=0.3, what=url)
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
    # A port no Service declares is captured too, and under STRICT takes mTLS only (Istio's
    # virtualInbound passthrough): a server on it answers its own pod, no plain-text peer.
    undeclared = UNDECLARED_PORT
    server = node.spawn(MESH_NS, details_pod, sys.executable, "-m", "http.server",
                        str(undeclared), "--bind", "0.0.0.0")
    try:
        wait_for(lambda: node.exec(MESH_NS, details_pod, sys.executable, "-c", CALL,
                                   f"http://127.0.0.1:{undeclared}/").returncode == 0,
                 timeout=20, interval=0.2, what="the undeclared port's server")
        other = node.exec(MESH_NS, sleep_pod, sys.executable, "-c", CALL,
                          f"http://{details_ip}:{undeclared}/")
        assert other.returncode != 0, other.stdout
        assert not http_ok(f"http://{details_ip}:{undeclared}/", timeout=3)
    finally:
        node.kill(server)


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

    def every_version_seen() -> bool:
        seen.add(version() or "none")
        return seen >= {"v1", "v2", "v3"}

    try:
        wait_for(every_version_seen, timeout=60, interval=0.05, what="every reviews version")
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


def page(ingress: Ingress, user: str = "") -> tuple[str | None, str, float]:
    """(reviews version or None, body, seconds) of /productpage through the gateway."""
    headers = {"Cookie": f"user={user}"} if user else None
    status, body, seconds = ingress.get("/productpage", headers)
    found = VERSION.search(body) if status == 200 else None
    return (found.group(1) if found else None), body, seconds


def holds(condition: Any, in_a_row: int = 5, timeout: float = 60) -> None:
    """Until `condition()` is true for `in_a_row` calls in a row (a change in force)."""
    streak = [0]

    def agreed() -> bool:
        streak[0] = streak[0] + 1 if condition() else 0
        return streak[0] >= in_a_row

    wait_for(agreed, timeout=timeout, interval=0.05, what="the change in force")


def apply_samples(cluster: KubeCluster, *names: str) -> None:
    for name in names:
        cluster.apply(sample(name), "-n", MESH_NS)


def test_ingress_gateway_from_helm_serves_bookinfo(
    kube_cluster: KubeCluster, mesh: tuple[KubeControlPlane, PodNode], ingress: Ingress
) -> None:
    """The Done-when: `helm install` of the gateway, Bookinfo's Gateway and VirtualService
    applied with kubectl, and /productpage answering 200 through the gateway's pod."""
    stored = stored_gateway_pod(kube_cluster, ingress.pod)
    assert not stored["spec"].get("initContainers")  # no capture in a gateway's pod
    (proxy,) = stored["spec"]["containers"]
    assert [*proxy["command"], *proxy["args"]] == ["ratline", "agent", "router"]
    assert proxy["image"] != "auto"
    assert ingress.get("/productpage")[0] in (0, 404)  # nothing bound before the Gateway
    apply_samples(kube_cluster, "bookinfo-gateway.yaml")
    found = wait_for(lambda: (lambda r: r if r[0] else None)(page(ingress)), timeout=60,
                     interval=0.2, what="/productpage through the ingress gateway")
    assert "<title>Simple Bookstore App</title>" in found[1]
    assert ingress.get("/nowhere")[0] == 404  # the gateway's routes, not a passthrough


def test_traffic_shifting_through_the_gateway(
    kube_cluster: KubeCluster, ingress: Ingress
) -> None:
    """Istio's traffic-shifting task: all v1, then 50/50 v1/v3, then all v3."""
    apply_samples(kube_cluster, "destination-rule-all.yaml", "virtual-service-all-v1.yaml")
    holds(lambda: page(ingress)[0] == "v1")
    apply_samples(kube_cluster, "virtual-service-reviews-50-v3.yaml")
    holds(lambda: page(ingress)[0] == "v3", in_a_row=1)
    seen = Counter(page(ingress)[0] for _ in range(200))
    assert set(seen) <= {"v1", "v3"}, seen
    # 50/50 of 200: sd 7.1; 75..125 is ±3.5 sd, so 80/20 and 20/80 fall outside
    assert 75 <= seen["v3"] <= 125, seen
    apply_samples(kube_cluster, "virtual-service-reviews-v3.yaml")
    holds(lambda: page(ingress)[0] == "v3", in_a_row=10)
    assert Counter(page(ingress)[0] for _ in range(20)) == Counter({"v3": 20})


def test_fault_injection_for_jason_through_the_gateway(
    kube_cluster: KubeCluster, ingress: Ingress
) -> None:
    """Istio's fault-injection task: a 7 s ratings delay for jason (productpage gives up
    on reviews after 2 x 3 s), then an HTTP abort of ratings for jason."""
    apply_samples(kube_cluster, "virtual-service-all-v1.yaml",
                  "virtual-service-reviews-test-v2.yaml",
                  "virtual-service-ratings-test-delay.yaml")
    holds(lambda: page(ingress)[0] == "v1")
    wait_for(lambda: REVIEWS_UNAVAILABLE in page(ingress, "jason")[1], timeout=60,
             interval=0.2, what="the delay for jason in force")
    _, body, seconds = page(ingress, "jason")
    assert REVIEWS_UNAVAILABLE in body
    assert 5.5 <= seconds <= 15, seconds
    version, _, seconds = page(ingress)
    assert version == "v1" and seconds < 3, seconds  # not jason: no delay
    apply_samples(kube_cluster, "virtual-service-ratings-test-abort.yaml")
    holds(lambda: RATINGS_UNAVAILABLE in page(ingress, "jason")[1], in_a_row=3)
    version, body, _ = page(ingress, "jason")
    assert version == "v2" and RATINGS_UNAVAILABLE in body
    version, body, _ = page(ingress)
    assert version == "v1" and RATINGS_UNAVAILABLE not in body


def test_request_timeouts_through_the_gateway(
    kube_cluster: KubeCluster, ingress: Ingress
) -> None:
    """Istio's request-timeouts task: reviews v2 with a 2 s ratings delay takes about
    2 s; with a 0.5 s timeout on reviews the page comes back after about 1 s (productpage
    tries twice) without reviews."""
    apply_samples(kube_cluster, "virtual-service-reviews-v2.yaml",
                  "virtual-service-ratings-delay-2s.yaml")
    holds(lambda: (lambda r: r[0] == "v2" and r[2] >= 2.0)(page(ingress)), in_a_row=2)
    version, body, seconds = page(ingress)
    assert version == "v2" and 'data-stars="5"' in body
    assert 2.0 <= seconds <= 5.0, seconds
    apply_samples(kube_cluster, "virtual-service-reviews-v2-timeout.yaml")
    holds(lambda: REVIEWS_UNAVAILABLE in page(ingress)[1], in_a_row=2)
    _, body, seconds = page(ingress)
    assert REVIEWS_UNAVAILABLE in body
    assert 0.9 <= seconds <= 2.5, seconds
    apply_samples(kube_cluster, "virtual-service-all-v1.yaml")  # ratings undelayed again


def test_https_with_a_credential_name_secret_of_the_cluster(
    kube_cluster: KubeCluster, ingress: Ingress, tmp_path: Path
) -> None:
    """Istio's secure-gateways task: `kubectl create secret tls` in the gateway's namespace,
    a Gateway server with `credentialName`, HTTPS answered with that certificate."""
    ca = make_ca(tmp_path, "example.com")
    leaf = make_leaf(tmp_path, ca, "bookinfo.example.com", serial=4242)
    kube_cluster.kubectl("create", "-n", INGRESS_NS, "secret", "tls", "bookinfo-credential",
                         "--cert", str(leaf.cert), "--key", str(leaf.key))
    kube_cluster.apply(HTTPS_GATEWAY, "-n", MESH_NS)

    def answered() -> Any:
        try:
            answer = https_get(HTTPS_PORT, "bookinfo.example.com", ca.cert, host=ingress.ip)
        except OSError:
            return None
        return answer if answer.status == 200 else None

    answer = wait_for(answered, timeout=60, interval=0.3, what="HTTPS through the gateway")
    assert answer.serial == 4242  # the Secret's certificate, served over SDS


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
