"""VirtualService delegation: Istio's merge rules, and the routes they give."""

from __future__ import annotations

from typing import Any

from ratline.api.loader import load_text
from ratline.api.schemas.networking import HTTPMatchRequest, StringMatch
from ratline.translate.common import Findings
from ratline.translate.delegate import has_conflict, merge_rule
from ratline.translate.routes import ProxyScope, sidecar_route_config
from tests.translate import mesh

ROOT_AND_DELEGATES = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: api
    match:
    - uri: {prefix: /api}
    timeout: 3s
    headers: {request: {set: {x-root: "1"}}}
    delegate: {name: reviews-api}
  - delegate: {name: missing}
  - route:
    - destination: {host: reviews, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-api}
spec:
  http:
  - name: v2
    match:
    - uri: {prefix: /api/v2}
      headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
  - name: outside
    match:
    - uri: {prefix: /other}
    route:
    - destination: {host: reviews, subset: v3}
  - name: rest
    timeout: 1s
    route:
    - destination: {host: reviews, subset: v3}
"""


def _match(**fields: Any) -> HTTPMatchRequest:
    return HTTPMatchRequest.model_validate(fields)


def test_conflicts_follow_istio() -> None:
    root = _match(uri={"prefix": "/api"})
    assert not has_conflict(root, _match(uri={"prefix": "/api/v2"}))
    assert not has_conflict(root, _match(uri={"exact": "/api/x"}))
    assert has_conflict(root, _match(uri={"prefix": "/other"}))
    assert has_conflict(_match(uri={"exact": "/a"}), _match(uri={"prefix": "/a"}))
    assert has_conflict(_match(uri={"regex": "/a.*"}), _match(uri={"prefix": "/a"}))
    assert has_conflict(_match(port=80), _match(port=81))
    assert has_conflict(
        _match(headers={"a": {"exact": "1"}}), _match(headers={"a": {"exact": "2"}})
    )
    assert not has_conflict(_match(), _match(uri=StringMatch(prefix="/x")))


def test_delegate_rules_are_merged_under_the_root() -> None:
    loaded = load_text(ROOT_AND_DELEGATES, "vs.yaml")
    loaded.raise_for_errors()
    root, delegate = (r.spec for r in loaded.resources)
    merged = merge_rule(root.http[0], delegate.http[0])
    assert merged is not None
    assert merged.name == "api-v2"
    assert merged.timeout == 3.0  # from the root: the delegate rule leaves it unset
    assert merged.headers == root.http[0].headers
    [block] = merged.match
    assert block.uri is not None and block.uri.prefix == "/api/v2"
    assert block.headers["end-user"].exact == "jason"
    assert merge_rule(root.http[0], delegate.http[1]) is None
    rest = merge_rule(root.http[0], delegate.http[2])
    assert rest is not None and rest.timeout == 1.0  # the delegate's own wins
    assert rest.match[0].uri is not None and rest.match[0].uri.prefix == "/api"


def test_delegation_in_routes_and_its_findings() -> None:
    findings = Findings()
    config = sidecar_route_config(
        mesh.snapshot(ROOT_AND_DELEGATES), ProxyScope.of("default"), findings
    )
    host = next(h for h in config.virtual_hosts if h.name.startswith("reviews."))
    reviews = "reviews.default.svc.cluster.local"
    assert [(r.name, r.match.prefix, r.route.cluster) for r in host.routes] == [
        ("api-v2", "/api/v2", f"outbound|9080|v2|{reviews}"),
        ("api-rest", "/api", f"outbound|9080|v3|{reviews}"),
        ("", "/", f"outbound|9080|v1|{reviews}"),
    ]
    assert host.routes[0].route.timeout.seconds == 3
    assert host.routes[1].route.timeout.seconds == 1
    described = sorted(
        (str(m.resource), m.field, m.code)
        for m in findings.messages
        if not (m.field or "").endswith(".destination")  # (this snapshot has no subsets)
    )
    assert described == [
        ("VirtualService default/reviews", "spec.http[1].delegate", "RAT0002"),
        ("VirtualService default/reviews-api", "spec.http[1].match", "RAT0003"),
    ]
