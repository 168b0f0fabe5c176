"""Installing Ratline into the tests' real kube-apiserver: `helm install` of charts/ratline
(the real helm), `helm upgrade`, and `ratline install`.

No kubelet runs the Deployments: the stored objects are asserted on, and the control
plane's part is played by the control plane itself, run as a process outside the
cluster with the chart's ServiceAccount (so the chart's RBAC is what it gets) and the
chart's webhook URLs pointing at it (`base.validationURL`, as Istio's remote installs).
It fills in the webhooks' caBundle; Istio config applied afterwards goes through its
validation. An upgrade keeps the config and the caBundle and changes the MeshConfig.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from ratline.install.render import render
from ratline.install.values import parse_set, resolve
from ratline.kube.crds import all_crds
from ratline.kube.rbac import rbac_manifests
from tests.helpers import free_fixed_port, wait_for
from tests.install.helm_chart import CHART, helm, set_args
from tests.kube.ratline_on_kube import (
    KubeControlPlane,
    control_plane_env,
    ratline_cli,
    remove_cluster_wide,
)
from tests.kube_cluster import KubeCluster

pytestmark = [pytest.mark.kube, pytest.mark.timeout(300)]

HELM_NS = "ratline-helm"
INSTALL_NS = "ratline-install"
APP_NS = "install-apps"
INJECTOR = "ratline-sidecar-injector"
CRD_NAMES = [c["metadata"]["name"] for c in all_crds()]
VS = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: install-apps}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"""
BAD_VS = VS.replace("name: reviews,", "name: bad,").replace(
    "subset: v1}", "subset: v1}\n      weight: 150"
)


def remove_install(cluster: KubeCluster, namespace: str) -> None:
    """What a failing webhook would leave in other modules' way."""
    cluster.kubectl(
        "delete",
        f"validatingwebhookconfiguration/ratline-validator-{namespace}",
        f"mutatingwebhookconfiguration/{INJECTOR}",
        "--ignore-not-found",
    )


def namespace(cluster: KubeCluster, name: str) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    cluster.apply(json.dumps(body))


def subset(wanted: Any, live: Any, where: str = "") -> None:
    """Everything rendered is stored as rendered (the API server only adds defaults)."""
    if isinstance(wanted, dict):
        assert isinstance(live, dict), where
        for k, v in wanted.items():
            assert k in live, f"{where}.{k} missing"
            subset(v, live[k], f"{where}.{k}")
    elif isinstance(wanted, list):
        assert isinstance(live, list) and len(live) == len(wanted), where
        for i, (w, g) in enumerate(zip(wanted, live, strict=True)):
            subset(w, g, f"{where}[{i}]")
    else:
        assert wanted == live, f"{where}: {wanted!r} != {live!r}"


def object_args(obj: dict[str, Any]) -> list[str]:
    meta = obj["metadata"]
    return [obj["kind"], meta["name"]] + (["-n", meta["namespace"]] if "namespace" in meta else [])


def ca_bundle(cluster: KubeCluster, kind: str, name: str) -> str:
    obj = cluster.get_json(kind, name)
    return str(obj["webhooks"][0]["clientConfig"].get("caBundle", ""))


@pytest.fixture(scope="module")
def helm_release(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    remove_cluster_wide(kube_cluster)
    port = free_fixed_port()
    sets = [
        f"base.validationURL=https://127.0.0.1:{port}/validate",
        f"controlplane.injectionURL=https://127.0.0.1:{port}/inject",
    ]
    kubeconfig = kube_cluster.admin_kubeconfig
    helm(
        "install",
        "ratline",
        str(CHART),
        "-n",
        HELM_NS,
        "--create-namespace",
        *set_args(sets),
        kubeconfig=kubeconfig,
    )
    work: Path = tmp_path_factory.mktemp("helm-release")
    env = control_plane_env(RATLINE_KUBE_NAMESPACE=HELM_NS, RATLINE_KUBE_WEBHOOK_PORT=str(port))
    plane = KubeControlPlane(kube_cluster, work, env, HELM_NS)
    try:
        yield {"sets": sets, "plane": plane, "kubeconfig": kubeconfig}
    finally:
        plane.stop()
        helm("uninstall", "ratline", "-n", HELM_NS, "--wait", kubeconfig=kubeconfig, check=False)
        remove_install(kube_cluster, HELM_NS)
        kube_cluster.kubectl(
            "delete", "namespace", HELM_NS, APP_NS, "--wait=false", "--ignore-not-found"
        )


def test_helm_install_creates_what_ratline_renders(
    helm_release: dict[str, Any], kube_cluster: KubeCluster
) -> None:
    values = resolve([parse_set(s) for s in helm_release["sets"]])
    for obj in render(HELM_NS, values):
        meta = obj["metadata"]
        live = kube_cluster.get_json(*object_args(obj))
        if obj["kind"] == "ConfigMap":
            assert yaml.safe_load(live["data"]["mesh"]) == yaml.safe_load(obj["data"]["mesh"])
            continue
        subset(obj, live, f"{obj['kind']} {meta['name']}")
    crds = kube_cluster.get_json("crd", *CRD_NAMES)["items"]
    for crd in crds:
        assert {"type": "Established", "status": "True"}.items() <= next(
            c for c in crd["status"]["conditions"] if c["type"] == "Established"
        ).items()
    role = kube_cluster.get_json("clusterrole", "ratline-controlplane")
    assert role["rules"] == rbac_manifests(HELM_NS)[1]["rules"]
    deployments = kube_cluster.get_json("deployments", "-n", HELM_NS)["items"]
    assert sorted(d["metadata"]["name"] for d in deployments) == ["istio-ingressgateway", "istiod"]
    service = kube_cluster.get_json("service", "istio-ingressgateway", "-n", HELM_NS)
    assert service["spec"]["selector"] == {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    # No control plane yet: the webhooks carry no CA (it is the control plane's to add).
    assert ca_bundle(kube_cluster, "mutatingwebhookconfiguration", INJECTOR) == ""


def test_control_plane_fills_in_the_ca_and_istio_config_is_validated(
    helm_release: dict[str, Any], kube_cluster: KubeCluster
) -> None:
    plane: KubeControlPlane = helm_release["plane"]
    plane.start()
    validator = f"ratline-validator-{HELM_NS}"
    bundle = wait_for(
        lambda: ca_bundle(kube_cluster, "validatingwebhookconfiguration", validator),
        timeout=30,
        what="the control plane's caBundle on the chart's validating webhook",
    )
    root = x509.load_pem_x509_certificate(base64.b64decode(bundle))
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    namespace(kube_cluster, APP_NS)
    kube_cluster.apply(VS)
    refused = kube_cluster.apply(BAD_VS, check=False)
    assert refused.returncode != 0
    assert "validation.ratline.dev" in refused.stderr and "weight" in refused.stderr
    stored = kube_cluster.get_json("virtualservice", "reviews", "-n", APP_NS)
    assert stored["spec"]["http"][0]["route"][0]["destination"]["subset"] == "v1"


def test_helm_upgrade_keeps_config_and_changes_the_mesh_config(
    helm_release: dict[str, Any], kube_cluster: KubeCluster
) -> None:
    before = kube_cluster.get_json("virtualservice", "reviews", "-n", APP_NS)
    validator = f"ratline-validator-{HELM_NS}"
    bundle = ca_bundle(kube_cluster, "validatingwebhookconfiguration", validator)
    assert bundle, "the previous test's control plane did not fill in the caBundle"
    istiod = kube_cluster.get_json("deployment", "istiod", "-n", HELM_NS)
    sets = [
        *helm_release["sets"],
        "controlplane.meshConfig.accessLogFile=/dev/stdout",
        "gateways.replicaCount=2",
    ]
    helm(
        "upgrade",
        "ratline",
        str(CHART),
        "-n",
        HELM_NS,
        *set_args(sets),
        kubeconfig=helm_release["kubeconfig"],
    )
    after = kube_cluster.get_json("virtualservice", "reviews", "-n", APP_NS)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    # The same object with the same spec: its generation counts spec changes only (a status
    # write by the running control plane moves resourceVersion, and may land meanwhile).
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    mesh = kube_cluster.get_json("configmap", "istio", "-n", HELM_NS)["data"]["mesh"]
    assert yaml.safe_load(mesh)["accessLogFile"] == "/dev/stdout"
    gateway = kube_cluster.get_json("deployment", "istio-ingressgateway", "-n", HELM_NS)
    assert gateway["spec"]["replicas"] == 2
    # The control plane's caBundle survives the upgrade; a MeshConfig change restarts
    # nothing (the control plane watches the ConfigMap), so istiod's template is as it was.
    assert ca_bundle(kube_cluster, "validatingwebhookconfiguration", validator) == bundle
    now = kube_cluster.get_json("deployment", "istiod", "-n", HELM_NS)
    assert now["metadata"]["generation"] == istiod["metadata"]["generation"]
    history = json.loads(
        helm(
            "history", "ratline", "-n", HELM_NS, "-o", "json", kubeconfig=helm_release["kubeconfig"]
        ).stdout
    )
    assert [h["status"] for h in history] == ["superseded", "deployed"]
    # Still validated after the upgrade.
    assert kube_cluster.apply(BAD_VS, check=False).returncode != 0


@pytest.fixture(scope="module")
def ratline_installed(helm_release: dict[str, Any], kube_cluster: KubeCluster) -> Iterator[None]:
    """After the Helm release is gone (its CRDs with it): `ratline install` from scratch."""
    helm_release["plane"].stop()
    helm("uninstall", "ratline", "-n", HELM_NS, "--wait", kubeconfig=helm_release["kubeconfig"])
    wait_for(
        lambda: kube_cluster.kubectl("get", "crd", CRD_NAMES[0], check=False).returncode != 0,
        timeout=60,
        what="the release's CRDs deleted",
    )
    try:
        yield
    finally:
        remove_install(kube_cluster, INSTALL_NS)
        kube_cluster.kubectl(
            "delete",
            "clusterrole/ratline-controlplane",
            "clusterrolebinding/ratline-controlplane",
            "--ignore-not-found",
        )
        kube_cluster.kubectl(
            "delete", "namespace", INSTALL_NS, "--wait=false", "--ignore-not-found"
        )


def _ratline_install(cluster: KubeCluster, *args: str, check: bool = True) -> Any:
    return ratline_cli(
        "install",
        "-n",
        INSTALL_NS,
        "--kubeconfig",
        str(cluster.admin_kubeconfig),
        *args,
        check=check,
        timeout=120,
    )


def test_ratline_install_applies_the_render_and_upgrades_in_place(
    ratline_installed: None, kube_cluster: KubeCluster
) -> None:
    done = _ratline_install(kube_cluster)
    assert f"CRDs served: {len(CRD_NAMES)}" in done.stdout
    # Served as soon as the command returns: custom resources can be listed at once.
    kube_cluster.kubectl("get", "virtualservices,destinationrules,gateways.networking.istio.io",
                         "-A")
    for obj in render(INSTALL_NS, resolve([])):
        meta = obj["metadata"]
        live = kube_cluster.get_json(*object_args(obj))
        if obj["kind"] == "ConfigMap":
            assert yaml.safe_load(live["data"]["mesh"]) == yaml.safe_load(obj["data"]["mesh"])
        else:
            subset(obj, live, f"{obj['kind']} {meta['name']}")
    # Bad values are refused before anything changes.
    bad = _ratline_install(
        kube_cluster, "--set", "controlplane.meshConfig.trustDomain=", check=False
    )
    assert bad.returncode == 1 and "controlplane.meshConfig.trustDomain" in bad.stderr
    mesh = kube_cluster.get_json("configmap", "istio", "-n", INSTALL_NS)["data"]["mesh"]
    assert yaml.safe_load(mesh)["trustDomain"] == "cluster.local"
    # Again with other values: an upgrade in place. With --wait it then waits for the
    # Deployments, which no node runs here: it says which, once the timeout is up.
    waited = _ratline_install(
        kube_cluster,
        "--set",
        "controlplane.meshConfig.accessLogFile=/dev/stdout",
        "--wait",
        "--timeout",
        "2",
        check=False,
    )
    assert waited.returncode == 1
    assert f"Deployment {INSTALL_NS}/istiod (0/1 available)" in waited.stderr
    mesh = kube_cluster.get_json("configmap", "istio", "-n", INSTALL_NS)["data"]["mesh"]
    assert yaml.safe_load(mesh)["accessLogFile"] == "/dev/stdout"
