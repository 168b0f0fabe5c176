"""The webhook's decision (`ratline.kube.admission`): ratline analyze's messages."""

from __future__ import annotations

from typing import Any

from ratline.api import load_text
from ratline.kube.admission import review

GOOD_DR = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}]
"""


def request(obj: dict[str, Any], operation: str = "CREATE") -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "operation": operation,
            "namespace": "default",
            "name": obj["metadata"]["name"],
            "object": obj,
        },
    }


def vs(weight: int, subset: str = "v1") -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": "reviews",
            "namespace": "default",
            "uid": "x",
            "managedFields": [],
            "generation": 1,
        },
        "spec": {
            "hosts": ["reviews"],
            "http": [
                {
                    "route": [
                        {"destination": {"host": "reviews", "subset": subset}, "weight": weight}
                    ]
                }
            ],
        },
    }


def in_force() -> list[Any]:
    return load_text(GOOD_DR).resources


def test_a_bad_resource_is_denied_with_resource_field_and_message() -> None:
    answer = review(request(vs(150)), in_force, lambda: None)["response"]
    assert answer["uid"] == "u-1" and answer["allowed"] is False
    assert answer["status"]["message"] == (
        "VirtualService default/reviews: spec.http[0].route[0].weight: must be 0..100"
    )


def test_a_good_resource_is_allowed_with_the_analyzers_findings_as_warnings() -> None:
    ok = review(request(vs(100)), in_force, lambda: None)["response"]
    assert ok == {"uid": "u-1", "allowed": True}
    warned = review(request(vs(100, subset="v9")), in_force, lambda: None)["response"]
    assert warned["allowed"] is True
    assert warned["warnings"] == [
        "VirtualService default/reviews: spec.http[0].route[0].destination.subset: subset "
        "'v9' of reviews.default.svc.cluster.local is not defined by any DestinationRule"
    ]


def test_deletes_and_garbage() -> None:
    assert review(request(vs(150), "DELETE"), in_force, lambda: None)["response"]["allowed"]
    assert not review({"nope": 1}, in_force, lambda: None)["response"]["allowed"]
