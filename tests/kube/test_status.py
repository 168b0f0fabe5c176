"""Status write-back's shapes (`ratline.kube.status`, `ratline.kube.gateway_status`)."""

from __future__ import annotations

from ratline.api.envelope import ResourceKey
from ratline.api.errors import ConfigMessage, Severity
from ratline.kube.gateway_status import CONTROLLER_NAME, gateway_api_status
from ratline.kube.objects import ClusterObject
from ratline.kube.status import desired_status, findings_by_object, status_differs

KEY = ResourceKey("VirtualService", "default", "reviews")
FINDING = ConfigMessage(
    "subset 'v9' is not defined",
    resource=KEY,
    field="spec.http[0].route[0].destination.subset",
    severity=Severity.WARNING,
    code="IST0101",
)


def test_findings_become_validation_messages_and_the_condition_message() -> None:
    obj = ClusterObject("VirtualService", "default", "reviews", {}, generation=3)
    status = desired_status(obj, [FINDING], refused=False, now="T1")
    assert status["observedGeneration"] == 3
    assert status["validationMessages"] == [
        {
            "level": "WARNING",
            "type": {"code": "IST0101", "name": "ReferencedResourceNotFound"},
            "documentationUrl": "https://istio.io/latest/docs/reference/config/analysis/ist0101/",
        }
    ]
    condition = status["conditions"][0]
    assert condition["status"] == "True" and condition["reason"] == "Accepted"
    assert "spec.http[0].route[0].destination.subset: subset 'v9'" in condition["message"]
    refused = desired_status(obj, [FINDING], refused=True, now="T1")["conditions"][0]
    assert refused["status"] == "False" and refused["reason"] == "Refused"


def test_an_unchanged_status_is_not_rewritten_and_keeps_its_transition_time() -> None:
    obj = ClusterObject("VirtualService", "default", "reviews", {}, generation=3)
    first = desired_status(obj, [], refused=False, now="T1")
    written = ClusterObject("VirtualService", "default", "reviews", {}, generation=3, status=first)
    again = desired_status(written, [], refused=False, now="T2")
    assert again["conditions"][0]["lastTransitionTime"] == "T1"
    assert not status_differs(first, again)
    newer = ClusterObject("VirtualService", "default", "reviews", {}, generation=4, status=first)
    assert status_differs(first, desired_status(newer, [], refused=False, now="T2"))


def test_findings_are_grouped_once_per_object() -> None:
    grouped = findings_by_object([FINDING, FINDING, ConfigMessage("no resource")])
    assert grouped == {KEY: [FINDING]}


def test_gateway_api_statuses() -> None:
    route = ClusterObject(
        "HTTPRoute", "default", "r", {"spec": {"parentRefs": [{"name": "gw"}]}}, generation=2
    )
    missing = ConfigMessage(
        "service nope not found", resource=KEY, field="spec.rules[0].backendRefs[0]", code="IST0101"
    )
    status = gateway_api_status(route, [missing], refused=False, now="T")
    assert status is not None
    parent = status["parents"][0]
    assert parent["controllerName"] == CONTROLLER_NAME and parent["parentRef"] == {"name": "gw"}
    conditions = {c["type"]: c for c in parent["conditions"]}
    assert conditions["ResolvedRefs"]["status"] == "False"
    assert conditions["ResolvedRefs"]["reason"] == "BackendNotFound"
    gateway = ClusterObject("KubernetesGateway", "default", "gw", {"spec": {}}, generation=1)
    status = gateway_api_status(gateway, [], False, "T")
    assert status is not None
    assert [c["type"] for c in status["conditions"]] == [
        "Accepted",
        "Programmed",
    ]
    other = ClusterObject("GatewayClass", "", "x", {"spec": {"controllerName": "other.io/c"}})
    assert gateway_api_status(other, [], False, "T") is None


def test_gateway_api_status_is_the_models_stamped() -> None:
    route = ClusterObject(
        "HTTPRoute", "default", "r", {"spec": {"parentRefs": [{"name": "gw"}]}}, generation=3,
        status={"parents": [{"parentRef": {"name": "gw"}, "conditions": [
            {"type": "Accepted", "status": "True", "lastTransitionTime": "BEFORE"},
            {"type": "ResolvedRefs", "status": "True", "lastTransitionTime": "BEFORE"}]}]},
    )
    computed = {"parents": [{"parentRef": {"name": "gw"}, "controllerName": CONTROLLER_NAME,
                             "conditions": [
                                 {"type": "Accepted", "status": "True", "reason": "Accepted"},
                                 {"type": "ResolvedRefs", "status": "False",
                                  "reason": "BackendNotFound"}]}]}
    status = gateway_api_status(route, [], refused=False, now="NOW", computed=computed)
    assert status is not None
    stamps = [(c["type"], c["reason"], c["observedGeneration"], c["lastTransitionTime"])
              for c in status["parents"][0]["conditions"]]
    assert stamps == [("Accepted", "Accepted", 3, "BEFORE"),
                      ("ResolvedRefs", "BackendNotFound", 3, "NOW")]
    # A refused current version: the model's status is of the last good one, not written.
    refused = gateway_api_status(route, [], refused=True, now="NOW", computed=computed)
    assert refused is not None
    assert {c["type"]: c["status"] for c in refused["parents"][0]["conditions"]} == {
        "Accepted": "False", "ResolvedRefs": "True"}
