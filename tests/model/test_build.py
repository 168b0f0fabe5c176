"""Building snapshots: incremental Services when only instances changed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ratline.api import load_text
from ratline.model.build import build_snapshot
from ratline.registry.instances import InstancePort, WorkloadInstance

CONFIG = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
"""


def _resources() -> list[Any]:
    loaded = load_text(CONFIG, "test.yaml")
    loaded.raise_for_errors()
    return list(loaded.resources)


def _instance(name: str, app: str, port: int) -> WorkloadInstance:
    return WorkloadInstance(
        name=name,
        namespace="default",
        workload=app,
        labels={"app": app},
        ports=(InstancePort(container_port=9080, app_port=port, inbound_port=port + 1),),
    )


INSTANCES = [_instance("reviews-0", "reviews", 20000), _instance("ratings-0", "ratings", 20010)]
REVIEWS = "reviews.default.svc.cluster.local"
RATINGS = "ratings.default.svc.cluster.local"


def test_services_not_selecting_a_changed_instance_are_kept() -> None:
    first = build_snapshot(_resources(), INSTANCES, None, "v1", config_version="c1")
    changed = [INSTANCES[0], replace(INSTANCES[1], healthy=False)]
    second = build_snapshot(_resources(), changed, None, "v2", "c1", previous=first)
    assert second.services[REVIEWS] is first.services[REVIEWS]
    assert second.services[RATINGS] is not first.services[RATINGS]
    [endpoint] = second.services[RATINGS].endpoints[9080]
    assert endpoint.healthy is False
    fresh = build_snapshot(_resources(), changed, None, "v2", "c1")
    assert second.services == fresh.services


def test_a_relabelled_instance_leaves_the_service_it_left_and_joins_the_other() -> None:
    first = build_snapshot(_resources(), INSTANCES, None, "v1", config_version="c1")
    moved = replace(INSTANCES[1], labels={"app": "reviews"})
    second = build_snapshot(_resources(), [INSTANCES[0], moved], None, "v2", "c1", previous=first)
    assert second.services[RATINGS].endpoints[9080] == ()
    assert len(second.services[REVIEWS].endpoints[9080]) == 2


def test_another_config_builds_everything_afresh() -> None:
    first = build_snapshot(_resources(), INSTANCES, None, "v1", config_version="c1")
    second = build_snapshot(_resources(), INSTANCES, None, "v2", "c2", previous=first)
    assert second.services[REVIEWS] is not first.services[REVIEWS]
    assert second.services == first.services


ROUTES = """
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: default}
spec:
  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: reviews, port: 9080}, {name: missing, port: 9080}]}]
"""


def test_an_instance_change_keeps_the_routing_and_the_gateway_api_conversion() -> None:
    loaded = load_text(CONFIG + ROUTES, "test.yaml")
    loaded.raise_for_errors()
    resources = list(loaded.resources)
    first = build_snapshot(resources, INSTANCES, None, "v1", config_version="c1")
    assert first.model_findings or first.gateway_api_status  # the conversion ran
    changed = [INSTANCES[0], replace(INSTANCES[1], healthy=False)]
    second = build_snapshot(resources, changed, None, "v2", "c1", previous=first)
    assert second.virtual_services is first.virtual_services
    assert second.gateways is first.gateways
    assert second.gateway_api_status is first.gateway_api_status
    assert second.model_findings is first.model_findings
    assert second.version == "v2" and second.instances != first.instances
    fresh = build_snapshot(resources, changed, None, "v2", "c1")
    assert second == fresh
