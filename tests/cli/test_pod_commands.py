"""`ratline kube-inject` on Istio's own Bookinfo manifest, as `istioctl kube-inject`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from ratline.kube.injection import InjectionParams, inject
from tests.tools import TOOLS_DIR

BOOKINFO = TOOLS_DIR / "istio-files/samples/bookinfo/platform/kube/bookinfo.yaml"


def kube_inject(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ratline", "kube-inject", *args], input=stdin,
                          capture_output=True, text=True, timeout=60, check=False)


def test_bookinfo_deployments_injected_others_unchanged() -> None:
    proc = kube_inject("-f", str(BOOKINFO), "--xds-address", "cp:1", "--ca-address", "cp:2")
    assert proc.returncode == 0, proc.stderr
    before = [d for d in yaml.safe_load_all(BOOKINFO.read_text()) if d]
    after = list(yaml.safe_load_all(proc.stdout))
    assert len(after) == len(before)
    params = InjectionParams(image="ratline/ratline:latest", xds_address="cp:1",
                             ca_address="cp:2")
    deployments = 0
    for old, new in zip(before, after, strict=True):
        if old["kind"] != "Deployment":
            assert new == old
            continue
        deployments += 1
        assert new["spec"]["template"] == inject(old["spec"]["template"], params,
                                                 "default").pod
        inits = [c["name"] for c in new["spec"]["template"]["spec"]["initContainers"]]
        assert inits == ["istio-init", "istio-proxy"]
    assert deployments == 6


def test_bad_annotation_names_file_resource_and_field(tmp_path: Path) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "ns", "annotations": {
               "traffic.sidecar.istio.io/excludeInboundPorts": "9080,x"}},
           "spec": {"containers": [{"name": "app", "image": "a"}]}}
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(pod))
    proc = kube_inject("-f", str(path))
    assert proc.returncode != 0
    assert f"{path}: Pod ns/p: metadata.annotations[traffic.sidecar.istio.io/" \
           "excludeInboundPorts: 'x' is not a port" in proc.stderr


def test_the_charts_gateway_deployment_gets_the_gateway_template() -> None:
    """As `istioctl kube-inject` on Istio's gateway Deployment: `ratline agent router`."""
    from ratline.install.render import render
    from ratline.install.values import resolve

    (gateway,) = [o for o in render("istio-ingress", resolve([]))
                  if o["kind"] == "Deployment" and o["metadata"]["name"] == "istio-ingressgateway"]
    proc = kube_inject("-f", "-", stdin=yaml.safe_dump(gateway))
    assert proc.returncode == 0, proc.stderr
    (injected,) = yaml.safe_load_all(proc.stdout)
    spec = injected["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    (proxy,) = spec["containers"]
    assert [*proxy["command"], *proxy["args"]] == ["ratline", "agent", "router"]
    assert proxy["image"] == "ratline/ratline:latest"
