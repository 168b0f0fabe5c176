"""CRDs generated from Ratline's schemas: structural, every version served, value rules
left to Ratline (`ratline.kube.crds`, `ratline.kube.openapi`)."""

from __future__ import annotations

from typing import Any

from ratline.api.kinds import KINDS
from ratline.kube.crds import all_crds, crd_kinds, plural
from ratline.kube.webhook import webhook_rules


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for key, child in (node.get("properties") or {}).items():
        out += _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_every_istio_kind_ratline_reads_has_a_structural_crd() -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in all_crds()}
    istio = {k for k, i in KINDS.items() if i.api_versions[0].split("/")[0].endswith("istio.io")}
    assert istio <= set(crds) and "Workload" in crds
    assert not {"Service", "Namespace", "ServiceAccount"} & set(crds)
    for kind, crd in crds.items():
        versions = crd["spec"]["versions"]
        assert [v["name"] for v in versions] == [v.split("/")[1] for v in KINDS[kind].api_versions]
        assert [v["storage"] for v in versions].count(True) == 1
        for version in versions:
            assert version["served"] and version["subresources"] == {"status": {}}
            schema = version["schema"]["openAPIV3Schema"]
            for path, node in _walk(schema):
                assert "$ref" not in node and "default" not in node, (kind, path)
                assert "anyOf" not in node and "enum" not in node and "minimum" not in node
                assert (
                    "type" in node
                    or node.get("x-kubernetes-int-or-string")
                    or node.get("x-kubernetes-preserve-unknown-fields")
                ), (kind, path)
                assert not ("properties" in node and "additionalProperties" in node)


def test_yaml_forms_and_short_names() -> None:
    vs = next(c for c in all_crds() if c["spec"]["names"]["kind"] == "VirtualService")
    spec = vs["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    http = spec["properties"]["http"]["items"]["properties"]
    assert http["timeout"] == {"type": "string"}  # durations as Istio writes them
    weight = http["route"]["items"]["properties"]["weight"]
    assert weight == {"type": "integer"}  # 0..100 is the webhook's to say
    assert vs["spec"]["names"]["shortNames"] == ["vs"]
    assert vs["spec"]["names"]["categories"] == ["istio-io", "networking-istio-io"]


def test_plurals_and_webhook_rules() -> None:
    assert [plural(k) for k in ("ServiceEntry", "Gateway", "Telemetry", "GatewayClass")] == [
        "serviceentries",
        "gateways",
        "telemetries",
        "gatewayclasses",
    ]
    rules = {r["apiGroups"][0]: r for r in webhook_rules(KINDS)}
    assert "virtualservices" in rules["networking.istio.io"]["resources"]
    assert "" not in rules and rules["networking.istio.io"]["operations"] == ["CREATE", "UPDATE"]
    assert sum(len(r["resources"]) for r in rules.values()) == len(crd_kinds(KINDS))
