"""Gateway API kinds: read with their own schemas; its Gateway is stored as
`KubernetesGateway`, beside an Istio Gateway of the same namespace and name."""

from __future__ import annotations

from ratline.api.kinds import KUBERNETES_GATEWAY, type_name
from ratline.api.loader import load_text, read_keys

GATEWAY_API_GATEWAY = (
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
    "spec: {gatewayClassName: istio, listeners: [{name: http, port: 80, protocol: HTTP}]}\n"
)
ISTIO_GATEWAY = (
    "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw}\n"
    "spec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, "
    "protocol: HTTP}, hosts: ['*']}]}\n"
)


def test_both_gateways_of_one_name_are_two_resources() -> None:
    loaded = load_text(GATEWAY_API_GATEWAY + "---\n" + ISTIO_GATEWAY, "gw.yaml")
    assert loaded.messages == []
    kinds = sorted(r.key.kind for r in loaded.resources)
    assert kinds == ["Gateway", KUBERNETES_GATEWAY]
    istio = next(r for r in loaded.resources if r.kind == "Gateway")
    assert istio.spec.selector == {"istio": "ingressgateway"}
    assert type_name(KUBERNETES_GATEWAY) == "gateway.gateway.networking.k8s.io"
    keys, _ = read_keys(GATEWAY_API_GATEWAY)
    assert [k.kind for k in keys] == [KUBERNETES_GATEWAY]


def test_a_bad_field_is_named() -> None:
    text = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\n"
        "spec:\n  parentRefs: [{name: gw}]\n  rules:\n  - matches: [{path: {type: Prefix}}]\n"
    )
    (message,) = load_text(text, "route.yaml").messages
    assert message.field == "spec.rules[0].matches[0].path.type"
    assert message.source.file == "route.yaml" and message.resource is not None
    assert message.resource.kind == "HTTPRoute"


def test_an_unknown_gateway_api_kind_is_refused() -> None:
    text = (
        "apiVersion: gateway.networking.k8s.io/v1\nkind: UDPRoute\nmetadata: {name: r}\n"
        "spec: {}\n"
    )
    (message,) = load_text(text, "r.yaml").messages
    assert message.field == "kind" and "UDPRoute" in message.message
