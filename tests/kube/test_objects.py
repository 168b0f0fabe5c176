"""Cluster objects as the documents a user wrote (`ratline.kube.objects`)."""

from __future__ import annotations

from ratline.api.kinds import KINDS
from ratline.kube.objects import cluster_object, to_resource


def test_server_fields_are_dropped_and_kubernetes_spec_extras_ignored() -> None:
    service = {
        "metadata": {
            "name": "reviews",
            "namespace": "bookinfo",
            "uid": "u1",
            "resourceVersion": "9",
            "generation": 1,
            "managedFields": [{}],
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
        },
        "spec": {
            "ports": [{"port": 9080, "name": "http"}],
            "selector": {"app": "reviews"},
            "clusterIP": "10.96.0.9",
            "trafficDistribution": "PreferClose",
            "healthCheckNodePort": 30000,
        },
        "status": {"loadBalancer": {}},
    }
    obj = cluster_object(service, "Service", "v1", KINDS["Service"])
    assert obj.body["apiVersion"] == "v1" and obj.body["kind"] == "Service"  # list items lack them
    assert obj.body["metadata"] == {
        "name": "reviews",
        "namespace": "bookinfo",
        "creationTimestamp": "2026-01-01T00:00:00Z",
    }
    assert "trafficDistribution" not in obj.body["spec"] and "status" not in obj.body
    resource, messages = to_resource(obj)
    assert messages == [] and resource is not None and resource.spec.cluster_ip == "10.96.0.9"


def test_a_custom_resources_unknown_field_is_reported_not_dropped() -> None:
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "r", "namespace": "default", "generation": 2},
        "spec": {"hosts": ["r"], "exportTo": ["."], "tcp": [], "newIstioField": True},
    }
    obj = cluster_object(vs, "VirtualService", "networking.istio.io/v1", KINDS["VirtualService"])
    assert obj.generation == 2
    resource, messages = to_resource(obj)
    assert resource is None
    assert [(m.field, str(m.resource)) for m in messages] == [
        ("spec.newIstioField", "VirtualService default/r")
    ]
    assert str(messages[0]).startswith("kubernetes, VirtualService default/r: spec.newIstioField")


def test_status_changes_are_not_config_changes() -> None:
    vs = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "r", "generation": 1},
        "spec": {"hosts": ["r"]},
    }
    info = KINDS["VirtualService"]
    a = cluster_object(vs, "VirtualService", "networking.istio.io/v1", info)
    b = cluster_object({**vs, "status": {"x": 1}}, "VirtualService", "networking.istio.io/v1", info)
    assert a != b and a.same_config(b)
