"""The apps the tests' node runs in injected pods: Istio's Bookinfo images as local files.

`IMAGES` maps each of Istio's Bookinfo images to the command of Ratline's app that plays
it (no container runtime here: see `tests.kube_pod_node`); `details_manifest` is Istio's
own `details` Service, ServiceAccount and Deployment for a namespace.
"""

from __future__ import annotations

import json
import sys

import yaml

from tests.helpers import wait_for
from tests.kube.ratline_on_kube import BOOKINFO, REPO, istio_file
from tests.kube_cluster import KubeCluster

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


def create_retrying(cluster: KubeCluster, text: str, *args: str) -> None:
    """The API server picks a new webhook configuration up asynchronously: retry."""
    wait_for(lambda: cluster.apply(text, *args, check=False).returncode == 0, timeout=30,
             interval=0.5, what="kubectl apply")
