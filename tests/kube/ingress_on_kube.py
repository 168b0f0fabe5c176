"""The tests' injected mesh installed as a user installs it, with the real `helm`.

`install_mesh_chart`: `charts/ratline` with its gateways left out (Istio's `base` and
`istiod` charts), the webhooks' URLs pointing at the control plane, which runs as a
process outside the cluster with the chart's `istiod` ServiceAccount (no kubelet runs
its Deployment). `install_ingress`: the chart's `gateways` part on its own (as Istio's
`helm install istio-ingress istio/gateway -n istio-ingress`), its pod injected by the
webhook's gateway template and run by the tests' node; Bookinfo's pages are then fetched
through it from the node, as a user's curl would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratline.kube.crds import all_crds
from tests.helpers import http_get, wait_for
from tests.install.helm_chart import CHART, helm
from tests.kube.ratline_on_kube import (
    BOOKINFO_NETWORKING,
    REPO,
    istio_file,
    remove_cluster_wide,
    wait_crds_established,
)
from tests.kube_cluster import KubeCluster
from tests.kube_pod_node import PodNode

MESH_RELEASE = "ratline"
CONTROL_PLANE_NS = "ratline-mesh"
"""The release's namespace (not istio-system: other modules' kubectl-made objects there
would be refused by Helm, which adopts nothing it did not create)."""
INGRESS_NS = "istio-ingress"
RELEASE = "ratline-ingress"
GATEWAY_CHART = CHART / "charts" / "gateways"
GATEWAY_SELECTOR = "istio=ingressgateway"
GATEWAY_HTTP_PORT = 8080
"""The Bookinfo Gateway's server port (Istio's sample since 1.19), the pod's own."""
RATLINE_SAMPLES = REPO / "examples" / "bookinfo-samples"
INLINE_STEPS = frozenset({"virtual-service-reviews-v2.yaml",
                          "virtual-service-ratings-delay-2s.yaml",
                          "virtual-service-reviews-v2-timeout.yaml"})
"""The request-timeouts task's steps, which Istio's docs give inline: Ratline's copies."""


def sample(name: str) -> str:
    """An Istio Bookinfo networking sample, or Ratline's copy of a task's inline step."""
    if name in INLINE_STEPS:
        return (RATLINE_SAMPLES / name).read_text()
    return istio_file(Path(BOOKINFO_NETWORKING) / name)


@dataclass
class Ingress:
    """The gateway pod as the node runs it: where to send requests."""

    pod: str
    ip: str

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{GATEWAY_HTTP_PORT}"

    def get(self, path: str, headers: dict[str, str] | None = None,
            timeout: float = 30) -> tuple[int, str, float]:
        """(status, body, seconds); status 0 when the connection failed."""
        started = time.monotonic()
        try:
            status, body, _ = http_get(self.url + path, headers, timeout=timeout)
        except OSError as exc:
            status, body = 0, str(exc)
        return status, body, time.monotonic() - started


def install_mesh_chart(cluster: KubeCluster, webhook_url: str) -> None:
    """`helm install` of the chart but its gateways, the webhooks at `webhook_url`."""
    remove_cluster_wide(cluster)
    helm("install", MESH_RELEASE, str(CHART), "-n", CONTROL_PLANE_NS, "--create-namespace",
         "--set", f"base.validationURL={webhook_url}/validate",
         "--set", f"controlplane.injectionURL={webhook_url}/inject",
         "--set", "gateways.enabled=false", kubeconfig=cluster.admin_kubeconfig)
    wait_crds_established(cluster)


def uninstall_mesh_chart(cluster: KubeCluster) -> None:
    """The release gone, its CRDs (and every Istio object with them) deleted, so the next
    modules' `ratline manifest crds` applies afresh."""
    helm("uninstall", MESH_RELEASE, "-n", CONTROL_PLANE_NS, "--wait",
         kubeconfig=cluster.admin_kubeconfig, check=False)
    first = all_crds()[0]["metadata"]["name"]
    wait_for(lambda: cluster.kubectl("get", "crd", first, check=False).returncode != 0,
             timeout=60, interval=0.5, what="the release's CRDs deleted")
    cluster.kubectl("delete", "namespace", CONTROL_PLANE_NS, "--wait=false",
                    "--ignore-not-found")


def install_ingress(cluster: KubeCluster, node: PodNode) -> Ingress:
    """`helm install` of the gateways chart, unchanged; its pod injected and running."""
    cluster.kubectl("create", "namespace", INGRESS_NS)
    wait_for(lambda: cluster.kubectl("get", "configmap", "istio-ca-root-cert", "-n",
                                     INGRESS_NS, check=False).returncode == 0,
             timeout=30, what=f"istio-ca-root-cert in {INGRESS_NS}")
    helm("install", RELEASE, str(GATEWAY_CHART), "-n", INGRESS_NS,
         kubeconfig=cluster.admin_kubeconfig)
    ((pod, ip),) = node.run_all(INGRESS_NS, 1, GATEWAY_SELECTOR).items()
    node.wait_ready(INGRESS_NS, pod)
    return Ingress(pod, ip)


def uninstall_ingress(cluster: KubeCluster) -> None:
    helm("uninstall", RELEASE, "-n", INGRESS_NS, "--wait", kubeconfig=cluster.admin_kubeconfig,
         check=False)


def stored_gateway_pod(cluster: KubeCluster, name: str) -> dict[str, Any]:
    return cluster.get_json("pod", name, "-n", INGRESS_NS)
