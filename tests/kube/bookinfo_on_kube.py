"""Bookinfo on the test cluster, as an Istio user deploys it, plus the pods' proxies.

`deploy_bookinfo`: Istio's Bookinfo manifests (Services, ServiceAccounts, Deployments)
and its DestinationRules and Gateway applied with kubectl in namespace `bookinfo`; an
ingress gateway Deployment in `istio-system` (labelled and annotated as Istio's
gateway injection makes it); a `fleet` Deployment whose pods the simulated proxies play;
every pod the controller-manager makes is then run by `FakeNode`.

`PodProxies` runs real Envoys for chosen pods (`tests.kube.pod_proxies`): certificates
from CSRs with the pods' own service-account tokens, mTLS xDS, Istio node ids.
`fleet_credentials` makes the simulated proxies' client certificate the same way.
"""

from __future__ import annotations

import functools
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratline.ca.csr import make_csr, new_private_key, private_key_pem
from ratline.ca.identity import spiffe_id
from ratline.settings import Settings
from tests.helpers import free_port, http_get, kill_pids, wait_for
from tests.kube.ratline_on_kube import (
    BOOKINFO,
    BOOKINFO_NETWORKING,
    NAMESPACE,
    REPO,
    KubeControlPlane,
    istio_file,
)
from tests.kube_cluster import FakeNode, KubeCluster

BOOKINFO_NS = "bookinfo"
FLEET = 20
"""Pods of the `fleet` Deployment, each played by a simulated proxy."""
CA_AUDIENCE = "istio-ca"

GATEWAY_MANIFEST = f"""
apiVersion: v1
kind: ServiceAccount
metadata:
  name: istio-ingressgateway
  namespace: {NAMESPACE}
---
apiVersion: v1
kind: Service
metadata:
  name: istio-ingressgateway
  namespace: {NAMESPACE}
spec:
  selector:
    istio: ingressgateway
  ports:
  - name: http2
    port: 80
    targetPort: 8080
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: istio-ingressgateway
  namespace: {NAMESPACE}
spec:
  replicas: 1
  selector:
    matchLabels:
      istio: ingressgateway
  template:
    metadata:
      labels:
        istio: ingressgateway
        app: istio-ingressgateway
      annotations:
        inject.istio.io/templates: gateway
    spec:
      serviceAccountName: istio-ingressgateway
      containers:
      - name: istio-proxy
        image: auto
        ports:
        - containerPort: 8080
"""

FLEET_MANIFEST = f"""
apiVersion: v1
kind: ServiceAccount
metadata:
  name: fleet
  namespace: {BOOKINFO_NS}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: fleet
  namespace: {BOOKINFO_NS}
spec:
  replicas: {FLEET}
  selector:
    matchLabels:
      app: fleet
  template:
    metadata:
      labels:
        app: fleet
    spec:
      serviceAccountName: fleet
      containers:
      - name: client
        image: curlimages/curl
"""


def deploy_bookinfo(cluster: KubeCluster, node: FakeNode) -> dict[str, dict[str, Any]]:
    """Apply and run everything; returns pod name → pod (as kubectl shows it)."""
    cluster.apply(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": BOOKINFO_NS}})
    )
    cluster.kubectl("apply", "-n", BOOKINFO_NS, "-f", "-", stdin=istio_file(BOOKINFO))
    cluster.kubectl(
        "apply", "-n", BOOKINFO_NS, "-f", str(BOOKINFO_NETWORKING / "destination-rule-all.yaml")
    )
    # The sample's Gateway listens on 8080, a fixed port of the shared host: port 80 here
    # (the gateway listens on 80 + RATLINE_GATEWAY_PORT_OFFSET, a free port).
    gateway = istio_file(BOOKINFO_NETWORKING / "bookinfo-gateway.yaml")
    assert "number: 8080" in gateway
    cluster.kubectl(
        "apply", "-n", BOOKINFO_NS, "-f", "-", stdin=gateway.replace("number: 8080", "number: 80")
    )
    cluster.apply(GATEWAY_MANIFEST)
    cluster.apply(FLEET_MANIFEST)
    node.run_all(BOOKINFO_NS, expected=6 + FLEET)
    node.run_all(NAMESPACE, expected=1, selector="istio=ingressgateway")
    return all_pods(cluster)


def undeploy_bookinfo(cluster: KubeCluster) -> None:
    cluster.kubectl("delete", "namespace", BOOKINFO_NS, "--wait=false", "--ignore-not-found")
    cluster.kubectl(
        "delete", "-f", "-", "--ignore-not-found", "--wait=false", stdin=GATEWAY_MANIFEST
    )


def all_pods(cluster: KubeCluster) -> dict[str, dict[str, Any]]:
    pods = {}
    for namespace in (BOOKINFO_NS, NAMESPACE):
        for pod in cluster.get_json("pods", "-n", namespace)["items"]:
            pods[pod["metadata"]["name"]] = pod
    return pods


def pod_named(pods: dict[str, dict[str, Any]], prefix: str) -> dict[str, Any]:
    found = sorted(name for name in pods if name.startswith(prefix))
    assert found, f"no pod named {prefix}*"
    return pods[found[0]]


def node_id(pod: dict[str, Any], kind: str = "sidecar") -> str:
    meta = pod["metadata"]
    ns = meta["namespace"]
    return f"{kind}~{pod['status']['podIP']}~{meta['name']}.{ns}~{ns}.svc.cluster.local"


def pod_token(cluster: KubeCluster, pod: dict[str, Any]) -> str:
    """A token of the pod's service account, bound to the pod, for the CA's audience."""
    meta = pod["metadata"]
    return cluster.kubectl(
        "create",
        "token",
        pod["spec"]["serviceAccountName"],
        "-n",
        meta["namespace"],
        f"--audience={CA_AUDIENCE}",
        "--bound-object-kind=Pod",
        f"--bound-object-name={meta['name']}",
        "--duration=3600s",
    ).stdout.strip()


@dataclass
class Proxy:
    """One real Envoy of `PodProxies`."""

    pod: dict[str, Any]
    node_id: str
    admin_port: int

    def get(self, path: str) -> str:
        status, body, _ = http_get(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5)
        assert status == 200, f"{path}: {status} {body[:300]}"
        return body

    def config_dump(self) -> dict[str, Any]:
        return dict(json.loads(self.get("/config_dump")))

    def route_clusters(self, route_config: str, domain_prefix: str) -> list[str]:
        """The clusters the routes of one virtual host of a dynamic route configuration name."""
        for config in self.config_dump()["configs"]:
            for dynamic in config.get("dynamic_route_configs", ()):
                route = dynamic["route_config"]
                if route["name"] != route_config:
                    continue
                for host in route.get("virtual_hosts", ()):
                    if host["name"].startswith(domain_prefix):
                        found = []
                        for r in host.get("routes", ()):
                            action = r.get("route", {})
                            if "cluster" in action:
                                found.append(action["cluster"])
                            for weighted in action.get("weighted_clusters", {}).get("clusters", ()):
                                found.append(weighted["name"])
                        return found
        return []

    def endpoints(self, cluster: str) -> dict[str, str]:
        """`IP:port` → health of one cluster's endpoints as Envoy holds them: the EDS
        health (`HEALTHY`, `UNHEALTHY`), or Envoy's own failure flags if any."""
        found: dict[str, str] = {}
        data = json.loads(self.get("/clusters?format=json"))
        for status in data.get("cluster_statuses", ()):
            if status["name"] != cluster:
                continue
            for host in status.get("host_statuses", ()):
                addr = host["address"]["socket_address"]
                health = host.get("health_status", {})
                failed = [k for k, v in health.items() if v is True]  # failed_* flags
                eds = str(health.get("eds_health_status", "HEALTHY"))
                found[f"{addr['address']}:{addr['port_value']}"] = ",".join(failed) or eds
        return found

    def localities(self, cluster: str) -> set[str]:
        data = json.loads(self.get("/clusters?format=json"))
        out = set()
        for status in data.get("cluster_statuses", ()):
            if status["name"] == cluster:
                for host in status.get("host_statuses", ()):
                    loc = host.get("locality", {})
                    out.add(f"{loc.get('region', '')}/{loc.get('zone', '')}")
        return out


class PodProxies:
    """Real Envoys for some pods, through `python -m tests.kube.pod_proxies`."""

    def __init__(
        self,
        cluster: KubeCluster,
        cp: KubeControlPlane,
        work: Path,
        pods: list[tuple[dict[str, Any], str]],
    ) -> None:
        self.work = work
        self.proxies = []
        entries = []
        for pod, kind in pods:
            proxy = Proxy(pod, node_id(pod, kind), free_port())
            self.proxies.append(proxy)
            entries.append(
                {
                    "node_id": proxy.node_id,
                    "cluster": f"{pod['metadata']['labels'].get('app', 'gateway')}."
                    f"{pod['metadata']['namespace']}",
                    "namespace": pod["metadata"]["namespace"],
                    "service_account": pod["spec"]["serviceAccountName"],
                    "token": pod_token(cluster, pod),
                    "admin_port": proxy.admin_port,
                }
            )
        config = {
            "envoy": Settings().envoy,
            "xds": cp.info["xds"],
            "ca": cp.info["ca"],
            "trust_bundle": str(cp.trust_bundle),
            "work": str(work),
            "delta": True,
            "proxies": entries,
        }
        work.mkdir(parents=True, exist_ok=True)
        (work / "config.json").write_text(json.dumps(config))
        self.log = open(work / "agent.log", "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.kube.pod_proxies", str(work / "config.json")],
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ready = work / "ready.json"
        wait_for(lambda: ready.exists() or self._died(), timeout=30, what="pod proxies")
        self.pids = json.loads(ready.read_text())["pids"]

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError((self.work / "agent.log").read_text()[-3000:])
        return False

    def wait_ready(self, timeout: float = 30) -> None:
        for proxy in self.proxies:
            wait_for(
                functools.partial(_is_live, proxy.admin_port),
                timeout=timeout,
                what=f"{proxy.node_id} LIVE (workload cert and config)",
            )

    def stop(self) -> None:
        kill_pids([self.proc.pid], timeout=10)
        kill_pids(self.pids, timeout=5)
        self.log.close()


def sign_csr(
    cp: KubeControlPlane, token: str, namespace: str, service_account: str
) -> tuple[int, dict[str, Any], bytes]:
    """POST a CSR for `namespace/service_account` with `token`: (status, answer, key PEM)."""
    key = new_private_key()
    trust_domain = "cluster.local"
    csr = make_csr(key, spiffe_id(trust_domain, namespace, service_account))
    body = json.dumps({"csr": csr.decode(), "ttl_s": 3600}).encode()
    request = urllib.request.Request(
        f"https://{cp.info['ca']}/v1/certificates",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=str(cp.trust_bundle))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    try:
        with opener.open(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read()), private_key_pem(key)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), b""


def fleet_credentials(
    cluster: KubeCluster, cp: KubeControlPlane, pod: dict[str, Any]
) -> tuple[bytes, bytes, bytes]:
    """(root, key, chain) PEMs of a certificate of the fleet's service account."""
    status, answer, key = sign_csr(cp, pod_token(cluster, pod), BOOKINFO_NS, "fleet")
    assert status == 200, answer
    return answer["root_cert"].encode(), key, answer["cert_chain"].encode()


def apply_every_sample(cluster: KubeCluster, namespace: str) -> dict[str, str]:
    """`kubectl apply` each of Istio's Bookinfo networking samples; file → kubectl's output
    for those refused (none expected). Samples naming their own namespace go there; the
    Gateway's port 8080 becomes 80 (8080 is a fixed port of the shared host)."""
    refused = {}
    for path in sorted(BOOKINFO_NETWORKING.glob("*.yaml")):
        text = path.read_text().replace("number: 8080", "number: 80")
        args = ["apply", "-f", "-"]
        if "namespace:" not in text:
            args += ["-n", namespace]
        proc = cluster.kubectl(*args, stdin=text, check=False)
        if proc.returncode != 0:
            refused[path.name] = proc.stderr
    return refused


def _is_live(admin_port: int) -> bool:
    """An agent-run Envoy's readiness: LIVE once it has its workload cert and config."""
    return http_get(f"http://127.0.0.1:{admin_port}/ready")[1].strip() == "LIVE"
