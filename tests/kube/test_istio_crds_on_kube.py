"""Istio's own CustomResourceDefinitions instead of Ratline's (from the istio.io/istio
module, never committed): the same control plane reads them, its webhook validates, its
status fits their status schema, and a kind Ratline does not read yet is reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.kube.bookinfo_on_kube import apply_every_sample
from tests.kube.ratline_on_kube import (
    BOOKINFO,
    REPO,
    KubeControlPlane,
    control_plane_env,
    install,
    istio_file,
)
from tests.kube_cluster import KubeCluster

pytestmark = [pytest.mark.kube, pytest.mark.e2e, pytest.mark.timeout(300)]

NS = "istio-crds"
BAD_VS = REPO / "examples" / "bookinfo-samples" / "bad-virtual-service.yaml"


@pytest.fixture(scope="module")
def cp(
    kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeControlPlane]:
    install(kube_cluster, crds="istio")
    kube_cluster.apply(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    )
    kube_cluster.kubectl("apply", "-n", NS, "-f", "-", stdin=istio_file(BOOKINFO))
    work: Path = tmp_path_factory.mktemp("istio-crds")
    plane = KubeControlPlane(kube_cluster, work, control_plane_env()).start()
    try:
        yield plane
    finally:
        plane.stop()
        plane.uninstall_webhook()
        kube_cluster.kubectl("delete", "namespace", NS, "--wait=false")
        kube_cluster.kubectl("delete", "envoyfilter", "--all", "-A", "--ignore-not-found")


def resources(cp: KubeControlPlane, kind: str) -> dict[str, dict[str, object]]:
    answer = cp.admin(f"/v1/resources?kind={kind}")
    return {f"{r['namespace']}/{r['name']}": r["resource"] for r in answer["resources"]}


def test_every_bookinfo_sample_applies_and_is_read(
    cp: KubeControlPlane, kube_cluster: KubeCluster
) -> None:
    assert apply_every_sample(kube_cluster, NS) == {}
    wanted = {f"{NS}/reviews", f"{NS}/ratings", f"{NS}/details", f"{NS}/productpage"}
    wait_for(
        lambda: wanted <= set(resources(cp, "DestinationRule")),
        timeout=20,
        what="the DestinationRules in the control plane",
    )
    vs = wait_for(
        lambda: resources(cp, "VirtualService").get(f"{NS}/reviews"),
        timeout=20,
        what="VirtualService reviews in the control plane",
    )
    # The last sample applied routes everything to v3.
    assert json.dumps(vs).count('"subset": "v3"') == 1


def test_an_older_api_version_reads_back(cp: KubeControlPlane, kube_cluster: KubeCluster) -> None:
    kube_cluster.apply(f"""
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {{name: details-old, namespace: {NS}}}
spec:
  hosts: [details]
  http:
  - route:
    - destination: {{host: details}}
""")
    found = wait_for(
        lambda: resources(cp, "VirtualService").get(f"{NS}/details-old"),
        timeout=20,
        what="the v1alpha3 VirtualService in force",
    )
    assert found["apiVersion"] == "networking.istio.io/v1"  # served at the preferred version


def test_webhook_refuses_and_status_fits_istios_schema(
    cp: KubeControlPlane, kube_cluster: KubeCluster
) -> None:
    proc = kube_cluster.kubectl("apply", "-n", NS, "-f", str(BAD_VS), check=False)
    assert proc.returncode == 1
    assert (
        f"VirtualService {NS}/reviews: spec.http[0].route[0].weight: must be 0..100" in proc.stderr
    )

    def ratings_status() -> dict[str, object] | None:
        obj = kube_cluster.get_json("virtualservice", "ratings", "-n", NS)
        status = obj.get("status") or {}
        codes = [m["type"]["code"] for m in status.get("validationMessages", ())]
        return status if "IST0101" in codes else None

    status = wait_for(ratings_status, timeout=20, what="IST0101 in ratings' status")
    assert status["conditions"][0]["type"] == "Reconciled"  # type: ignore[index]


def test_a_kind_ratline_does_not_read_is_reported_not_ignored(
    cp: KubeControlPlane, kube_cluster: KubeCluster
) -> None:
    kube_cluster.apply(f"""
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: custom, namespace: {NS}}}
spec:
  configPatches: []
""")

    def reported() -> list[dict[str, object]]:
        return [
            m
            for m in cp.admin("/v1/analyze")["messages"]
            if m["resource"] == f"EnvoyFilter {NS}/custom"
        ]

    found = wait_for(reported, timeout=20, what="the EnvoyFilter reported by analyze")
    assert "EnvoyFilter is not yet supported by Ratline" in str(found[0]["message"])
    status = wait_for(
        lambda: kube_cluster.get_json("envoyfilter", "custom", "-n", NS).get("status"),
        timeout=20,
        what="the EnvoyFilter's status",
    )
    condition = status["conditions"][0]
    assert condition["status"] == "False" and condition["reason"] == "NotSupported"
