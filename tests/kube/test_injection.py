"""Sidecar injection as a pure function: pod in, injected pod and JSON patch out."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from ratline.kube.admission import injection_review
from ratline.kube.injection import InjectionParams, inject
from ratline.kube.injection_annotations import InjectionError
from ratline.kube.injector_config import injector_configuration

PARAMS = InjectionParams(image="ratline:test", xds_address="cp:15012", ca_address="cp:15013",
                         mesh_proxy_config={"concurrency": 2})


def apply_patch(doc: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 `add` to object members (all the injector sends; the apiserver test
    applies the same patch for real)."""
    doc = copy.deepcopy(doc)
    for op in patch:
        assert op["op"] == "add"
        *parents, last = op["path"].lstrip("/").split("/")
        target = doc
        for key in parents:
            target = target[key]
        target[last] = op["value"]
    return doc


def pod(annotations: dict[str, str] | None = None, labels: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "reviews-1", "namespace": "bookinfo",
                     "labels": {"app": "reviews", "version": "v2", **(labels or {})},
                     "annotations": dict(annotations or {})},
        "spec": {"serviceAccountName": "bookinfo-reviews",
                 "containers": [{"name": "reviews", "image": "reviews:1",
                                 "ports": [{"name": "http", "containerPort": 9080}]}],
                 **spec},
    }


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_injected_pod_has_capture_then_native_sidecar() -> None:
    injected = inject(pod(), PARAMS)
    init = injected.pod["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["istio-init", "istio-proxy"]
    capture, proxy = init
    assert capture["command"][:2] == ["ratline", "iptables"]
    assert capture["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    assert proxy["restartPolicy"] == "Always"
    assert proxy["command"] == ["ratline", "agent"]
    assert proxy["securityContext"]["runAsUser"] == 1337
    assert proxy["startupProbe"]["httpGet"]["port"] == 15021  # hold the app until ready
    variables = env(proxy)
    assert variables["INSTANCE_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert variables["CA_ADDR"] == "cp:15013"
    assert json.loads(variables["PROXY_CONFIG"]) == {"concurrency": 2,
                                                      "discoveryAddress": "cp:15012"}
    assert variables["ISTIO_META_INTERCEPTION_MODE"] == "REDIRECT"
    volumes = {v["name"]: v for v in injected.pod["spec"]["volumes"]}
    token = volumes["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "istio-ca"
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == "istio-ca-root-cert"
    meta = injected.pod["metadata"]
    assert meta["labels"]["security.istio.io/tlsMode"] == "istio"
    assert meta["labels"]["service.istio.io/canonical-revision"] == "v2"
    assert "sidecar.istio.io/status" in meta["annotations"]
    assert injected.pod["spec"]["containers"][0]["name"] == "reviews"


def test_the_patch_makes_the_injected_pod() -> None:
    original = pod(initContainers=[{"name": "migrate", "image": "m"}],
                   volumes=[{"name": "data", "emptyDir": {}}])
    injected = inject(original, PARAMS)
    assert apply_patch(original, injected.patch) == injected.pod
    names = [c["name"] for c in injected.pod["spec"]["initContainers"]]
    assert names == ["istio-init", "istio-proxy", "migrate"]
    assert injected.pod["spec"]["volumes"][0]["name"] == "data"


@pytest.mark.parametrize(
    ("original", "reason"),
    [
        (pod(labels={"sidecar.istio.io/inject": "false"}), "sidecar.istio.io/inject: false"),
        (pod(annotations={"sidecar.istio.io/inject": "false"}), "sidecar.istio.io/inject"),
        (pod(hostNetwork=True), "host network"),
        (pod(annotations={"sidecar.istio.io/status": "{}"}), "already injected"),
    ],
)
def test_pods_left_alone(original: dict[str, Any], reason: str) -> None:
    injected = inject(original, PARAMS)
    assert injected.patch == [] and reason in injected.reason
    assert injected.pod == original


def test_annotations_shape_capture_resources_and_proxy_config() -> None:
    injected = inject(pod(annotations={
        "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/16",
        "traffic.sidecar.istio.io/excludeOutboundPorts": "3306",
        "traffic.sidecar.istio.io/excludeInboundPorts": "9090",
        "sidecar.istio.io/proxyCPU": "50m",
        "sidecar.istio.io/proxyMemoryLimit": "256Mi",
        "proxy.istio.io/config": "holdApplicationUntilProxyStarts: false\n"
                                 "proxyMetadata: {ISTIO_META_DNS_CAPTURE: 'true'}\n",
    }), PARAMS)
    capture, proxy = injected.pod["spec"]["initContainers"][:2]
    args = capture["command"]
    assert args[args.index("-i") + 1] == "10.96.0.0/16"
    assert args[args.index("-o") + 1] == "3306"
    assert "9090" in args[args.index("-d") + 1].split(",")
    assert proxy["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"},
                                  "limits": {"memory": "256Mi"}}
    assert "startupProbe" not in proxy
    assert env(proxy)["ISTIO_META_DNS_CAPTURE"] == "true"


def test_bad_annotations_refuse_with_the_field_named() -> None:
    with pytest.raises(InjectionError, match="excludeOutboundPorts: 'mysql'"):
        inject(pod(annotations={"traffic.sidecar.istio.io/excludeOutboundPorts": "mysql"}),
               PARAMS)
    with pytest.raises(InjectionError, match=r"proxy.istio.io/config\]: concurrency"):
        inject(pod(annotations={"proxy.istio.io/config": "concurrency: lots"}), PARAMS)


def test_unsupported_proxy_config_is_a_warning() -> None:
    injected = inject(pod(annotations={"proxy.istio.io/config": "privateKeyProvider: {}"}),
                      PARAMS)
    assert injected.patch
    assert any("privateKeyProvider" in w and "not supported" in w for w in injected.warnings)


def test_probes_go_through_the_agent() -> None:
    original = pod()
    app = original["spec"]["containers"][0]
    app["readinessProbe"] = {"httpGet": {"path": "/health", "port": "http"}, "timeoutSeconds": 2}
    app["livenessProbe"] = {"tcpSocket": {"port": 9080}, "periodSeconds": 5}
    injected = inject(original, PARAMS)
    app = injected.pod["spec"]["containers"][0]
    assert app["readinessProbe"]["httpGet"] == {
        "path": "/app-health/reviews/readyz", "port": 15020, "scheme": "HTTP"}
    assert app["livenessProbe"]["periodSeconds"] == 5
    probers = json.loads(env(injected.pod["spec"]["initContainers"][1])["ISTIO_KUBE_APP_PROBERS"])
    assert probers["/app-health/reviews/readyz"] == {
        "httpGet": {"path": "/health", "port": 9080}, "timeoutSeconds": 2}
    assert probers["/app-health/reviews/livez"] == {"tcpSocket": {"port": 9080}}


def test_admission_review_answers_with_a_json_patch() -> None:
    request = {"uid": "u1", "operation": "CREATE", "namespace": "bookinfo", "object": pod()}
    answer = injection_review({"request": request}, PARAMS)["response"]
    assert answer["allowed"] and answer["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(answer["patch"])) == inject(pod(), PARAMS).patch
    bad = pod(annotations={"traffic.sidecar.istio.io/includeOutboundIPRanges": "x"})
    refused = injection_review(
        {"request": {**request, "object": bad}}, PARAMS)["response"]
    assert not refused["allowed"]
    assert "Pod bookinfo/reviews-1: metadata.annotations[traffic.sidecar.istio.io/" \
           "includeOutboundIPRanges: 'x'" in refused["status"]["message"]


def test_injector_configuration_selects_as_istio() -> None:
    body = injector_configuration("istio-system", "PEM", url="https://127.0.0.1:1")
    assert body["metadata"]["name"] == "ratline-sidecar-injector"
    hooks = {h["name"]: h for h in body["webhooks"]}
    ns = hooks["namespace.sidecar-injector.istio.io"]
    assert ns["clientConfig"]["url"] == "https://127.0.0.1:1/inject"
    assert ns["namespaceSelector"]["matchExpressions"] == [
        {"key": "istio-injection", "operator": "In", "values": ["enabled"]}]
    assert all(h["failurePolicy"] == "Fail" for h in hooks.values())
    assert base64.b64decode(ns["clientConfig"]["caBundle"]) == b"PEM"
    obj = hooks["object.sidecar-injector.istio.io"]
    assert {"key": "sidecar.istio.io/inject", "operator": "In", "values": ["true"]} in \
        obj["objectSelector"]["matchExpressions"]


def gateway_pod(**container: Any) -> dict[str, Any]:
    """A pod of the chart's `istio-ingressgateway` Deployment (Istio's gateway chart's)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "istio-ingressgateway-1", "namespace": "istio-system",
                     "labels": {"app": "istio-ingressgateway", "istio": "ingressgateway",
                                "sidecar.istio.io/inject": "true"},
                     "annotations": {"inject.istio.io/templates": "gateway"}},
        "spec": {"serviceAccountName": "istio-ingressgateway",
                 "containers": [{"name": "istio-proxy", "image": "auto",
                                 "resources": {"requests": {"cpu": "10m"}}, **container}]},
    }


def test_gateway_template_fills_in_the_proxy_container() -> None:
    original = gateway_pod(env=[{"name": "ISTIO_META_UNPRIVILEGED_POD", "value": "true"}])
    injected = inject(original, PARAMS)
    assert injected.reason == "" and apply_patch(original, injected.patch) == injected.pod
    spec = injected.pod["spec"]
    assert "initContainers" not in spec  # no capture, no native sidecar
    (proxy,) = spec["containers"]
    assert proxy["image"] == "ratline:test"
    assert [*proxy["command"], *proxy["args"]] == ["ratline", "agent", "router"]
    assert proxy["resources"] == {"requests": {"cpu": "10m"}}  # the pod's own
    assert "restartPolicy" not in proxy and "startupProbe" not in proxy
    assert proxy["readinessProbe"]["httpGet"]["port"] == 15021
    variables = env(proxy)
    assert variables["ISTIO_META_UNPRIVILEGED_POD"] == "true"
    assert json.loads(variables["PROXY_CONFIG"])["discoveryAddress"] == "cp:15012"
    assert "ISTIO_META_INTERCEPTION_MODE" not in variables
    assert {m["mountPath"] for m in proxy["volumeMounts"]} >= {
        "/var/run/secrets/tokens", "/var/run/secrets/istio", "/etc/istio/proxy"}
    meta = injected.pod["metadata"]
    assert "security.istio.io/tlsMode" not in meta["labels"]
    assert json.loads(meta["annotations"]["sidecar.istio.io/status"])["containers"] == [
        "istio-proxy"]
    # An image of the pod's own is kept; a template Ratline does not have is refused.
    assert inject(gateway_pod(image="mine:1"), PARAMS).pod["spec"]["containers"][0][
        "image"] == "mine:1"
    unknown = gateway_pod()
    unknown["metadata"]["annotations"]["inject.istio.io/templates"] = "gateway,spire"
    with pytest.raises(InjectionError, match=r"templates\]: template 'spire' is not known"):
        inject(unknown, PARAMS)


def test_injected_gateway_pod_is_a_router_on_all_addresses() -> None:
    from ratline.kube.pods import pod_instance, pod_record
    from ratline.registry.instances import ProxyKind

    stored = inject(gateway_pod(), PARAMS).pod
    stored["status"] = {"podIP": "10.245.0.9", "phase": "Running"}
    instance = pod_instance(pod_record(stored), "", True, 15001, 15000)
    assert instance.kind is ProxyKind.ROUTER and instance.listen_address == "0.0.0.0"
    assert instance.node_id.startswith("router~10.245.0.9~istio-ingressgateway-1.istio-system")
    # Not injected (a gateway process outside the pod, as part 1's tests run it): the host's.
    plain = gateway_pod()
    plain["status"] = stored["status"]
    assert pod_instance(pod_record(plain), "", True, 15001, 15000).listen_address == ""
