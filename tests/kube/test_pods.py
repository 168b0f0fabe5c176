"""Pods as workload instances (`ratline.kube.pods`)."""

from __future__ import annotations

from typing import Any

from ratline.kube.pods import (
    endpoint_slice_readiness,
    is_instance,
    node_locality,
    pod_instance,
    pod_record,
)
from ratline.registry.instances import InstancePort, ProxyKind, SidecarPorts


def pod(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "metadata": {
            "name": "reviews-v1-5d8f-abcde",
            "namespace": "bookinfo",
            "labels": {"app": "reviews", "version": "v1", "pod-template-hash": "5d8f"},
            "ownerReferences": [
                {"kind": "ReplicaSet", "name": "reviews-v1-5d8f", "controller": True}
            ],
        },
        "spec": {
            "serviceAccountName": "bookinfo-reviews",
            "nodeName": "node-1",
            "containers": [{"name": "reviews", "ports": [{"containerPort": 9080}]}],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.7",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }
    for key, value in changes.items():
        base[key] = {**base[key], **value}
    return base


def test_a_running_pod_is_an_instance_with_the_nodes_locality() -> None:
    record = pod_record(pod())
    assert is_instance(record) and record.ready and record.workload == "reviews-v1"
    instance = pod_instance(
        record, "region-a/zone-a", ready=True, outbound_port=15001, admin_port=15000
    )
    assert (
        instance.node_id
        == "sidecar~10.244.0.7~reviews-v1-5d8f-abcde.bookinfo~bookinfo.svc.cluster.local"
    )
    assert instance.service_account == "bookinfo-reviews"
    assert instance.ports == (InstancePort(container_port=9080, app_port=9080),)
    assert instance.sidecar == SidecarPorts(outbound_port=15001, admin_port=15000)
    assert instance.locality == "region-a/zone-a" and instance.healthy
    assert "pod-template-hash" in instance.labels


def test_pending_finished_and_host_network_pods_are_not_instances() -> None:
    assert not is_instance(pod_record(pod(status={"podIP": ""})))
    assert not is_instance(pod_record(pod(status={"phase": "Succeeded"})))
    assert not is_instance(pod_record(pod(spec={"hostNetwork": True})))


def test_terminating_or_unready_pods_are_unhealthy() -> None:
    terminating = pod_record(pod(metadata={"deletionTimestamp": "2026-01-01T00:00:00Z"}))
    assert not pod_instance(terminating, "", True, 15001, 15000).healthy
    assert not pod_instance(pod_record(pod()), "", False, 15001, 15000).healthy


def test_gateway_pods_are_routers() -> None:
    gateway = pod_record(pod(metadata={"annotations": {"inject.istio.io/templates": "gateway"}}))
    assert gateway.kind is ProxyKind.ROUTER
    assert pod_instance(gateway, "", True, 15001, 15000).sidecar is None
    args = {"containers": [{"name": "istio-proxy", "args": ["proxy", "router"]}]}
    assert pod_record(pod(spec=args)).kind is ProxyKind.ROUTER


def test_node_locality_and_endpoint_slice_readiness() -> None:
    labels = {"topology.kubernetes.io/region": "r", "topology.kubernetes.io/zone": "z"}
    assert node_locality({"metadata": {"labels": labels}}) == "r/z"
    assert node_locality({"metadata": {}}) == ""
    slice_ = {
        "endpoints": [
            {"targetRef": {"kind": "Pod", "name": "b"}, "conditions": {"ready": False}},
            {"targetRef": {"kind": "Pod", "name": "a"}, "conditions": {"ready": True}},
            {"addresses": ["10.0.0.9"]},  # not a pod
        ]
    }
    assert endpoint_slice_readiness(slice_) == (("a", True), ("b", False))


def test_an_injected_pod_is_a_captured_instance() -> None:
    from ratline.kube.injection import InjectionParams, inject

    injected = inject(pod(), InjectionParams(image="i", xds_address="x:1", ca_address="c:2"))
    instance = pod_instance(
        pod_record(injected.pod), "", ready=True, outbound_port=15001, admin_port=15000
    )
    assert instance.sidecar is not None
    assert instance.sidecar.interception_mode == "REDIRECT"
    assert instance.ports == (InstancePort(container_port=9080, app_port=9080, inbound_port=9080),)
