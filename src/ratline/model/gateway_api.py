"""The Gateway API as Istio's model: Gateways → Istio Gateways, routes → VirtualServices.

One translation path, as in Istio: `convert` turns each Gateway API `Gateway` of class
`istio` or of a GatewayClass with Istio's `controllerName` (stored as
`KubernetesGateway`) into one Istio-shaped Gateway per listener
(`ratline.api.gateway_api` names them and the deployment they select), and each
HTTPRoute, TCPRoute and TLSRoute into a VirtualService bound to the listeners that
accept it (`parentRefs` with `sectionName`/`port`, `allowedRoutes` namespaces and kinds,
hostnames, protocol). The snapshot holds them beside the user's Istio resources; what
translation does with them is what it does with Istio's.

It also computes the status Istio's gateway controller writes (conditions `Accepted`,
`ResolvedRefs`, `Programmed` on Gateways and listeners, `Accepted` and `ResolvedRefs`
per parent on routes) and findings for valid config it does not translate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ratline.api.envelope import Resource, ResourceKey
from ratline.api.errors import ConfigMessage, Severity
from ratline.api.gateway_api import (
    CONTROLLER_NAME,
    GATEWAY_API_GROUP,
    ISTIO_CLASS,
    LISTENER_PROTOCOLS,
    istio_gateway_name,
    selector_for,
    served_classes,
)
from ratline.api.kinds import KUBERNETES_GATEWAY
from ratline.api.schemas.gateway_api import Listener
from ratline.api.schemas.networking import GatewaySpec, VirtualServiceSpec
from ratline.model.gateway_api_routes import Refs, RouteContext, granted, http_rules, l4_routes

NOT_SUPPORTED = "RAT0001"
ROUTE_PROTOCOLS = {
    "HTTPRoute": ("HTTP", "HTTPS"),
    "GRPCRoute": ("HTTP", "HTTPS"),
    "TCPRoute": ("TCP",),
    "TLSRoute": ("TLS",),
}


@dataclass
class GatewayApiModel:
    """What the Gateway API resources become."""

    gateways: list[Resource[Any]] = field(default_factory=list)
    virtual_services: list[Resource[Any]] = field(default_factory=list)
    status: dict[ResourceKey, dict[str, Any]] = field(default_factory=dict)
    findings: list[ConfigMessage] = field(default_factory=list)

    def finding(self, res: Resource[Any], where: str, text: str) -> None:
        self.findings.append(
            ConfigMessage(text, res.source, res.key, where, Severity.WARNING, NOT_SUPPORTED)
        )


def condition(kind: str, ok: bool, reason_ok: str, reason_bad: str, message: str = "") -> dict[
    str, Any
]:
    """One status condition, shaped as Istio's controller writes it."""
    return {
        "type": kind,
        "status": "True" if ok else "False",
        "reason": reason_ok if ok else reason_bad,
        "message": message or ("Resource accepted" if ok else "Resource refused"),
    }


def _synthetic(kind: str, name: str, namespace: str, spec: Any, of: Resource[Any]) -> Resource[Any]:
    return Resource(
        api_version="networking.istio.io/v1",
        kind=kind,
        name=name,
        namespace=namespace,
        spec=spec,
        annotations={"internal.istio.io/parents": f"{of.kind}/{of.namespace}/{of.name}"},
        source=of.source,
    )


@dataclass
class _Listener:
    gateway: Resource[Any]
    listener: Listener
    istio_name: str
    istio_namespace: str
    """The Istio Gateway's namespace: the Gateway's, or its certificate Secret's when a
    ReferenceGrant lets it use one of another namespace (translation looks there)."""
    attached: int = 0


def _server(listener: Listener, gw: Resource[Any], grants: tuple[Resource[Any], ...],
            where: str, model: GatewayApiModel) -> tuple[dict[str, Any] | None, str, str]:
    """The Istio server of a listener, or None, why not and the condition's reason
    (`UnsupportedProtocol`/`UnsupportedValue`: not accepted; `InvalidCertificateRef`/
    `RefNotPermitted`: accepted, references not resolved)."""
    protocol = LISTENER_PROTOCOLS.get(listener.protocol)
    if protocol is None:
        model.finding(gw, f"{where}.protocol", f"listener protocol {listener.protocol} is not "
                      "yet supported by Ratline; the listener is ignored")
        return None, f"protocol {listener.protocol} is not supported", "UnsupportedProtocol"
    server: dict[str, Any] = {
        "port": {"number": listener.port, "protocol": protocol, "name": listener.name},
        "hosts": [listener.hostname or "*"],
        "name": listener.name,
    }
    tls = listener.tls
    if tls is not None and tls.options:
        model.finding(gw, f"{where}.tls.options", "tls.options are not yet supported by "
                      "Ratline; ignored")
    allowed = listener.allowed_routes
    selector = allowed.namespaces.selector if allowed and allowed.namespaces else None
    if selector is not None and selector.match_expressions:
        model.finding(gw, f"{where}.allowedRoutes.namespaces.selector.matchExpressions",
                      "matchExpressions are not yet supported by Ratline: no route of "
                      "another namespace binds to this listener")
    if protocol in ("HTTPS", "TLS") and tls is not None and tls.mode == "Passthrough":
        server["tls"] = {"mode": "PASSTHROUGH"}
    elif protocol in ("HTTPS", "TLS"):
        refs = tls.certificate_refs if tls is not None else ()
        if not refs:
            return None, "a Terminate listener needs tls.certificateRefs", "InvalidCertificateRef"
        ref = refs[0]
        if (ref.group or "") != "" or (ref.kind or "Secret") != "Secret":
            return None, f"certificateRefs[0]: {ref.kind} is not a Secret", "InvalidCertificateRef"
        namespace = ref.namespace or gw.namespace
        if namespace != gw.namespace and not granted(
            grants, "Gateway", gw.namespace, "", "Secret", namespace, ref.name
        ):
            why = f"Secret {namespace}/{ref.name}: no ReferenceGrant allows it"
            return None, why, "RefNotPermitted"
        server["_namespace"] = namespace  # the Istio Gateway's: its Secrets are found there
        if protocol == "TLS":
            model.finding(gw, f"{where}.tls.mode", "TLS termination on a TLS listener is not "
                          "yet supported by Ratline; the listener is ignored")
            return None, "TLS termination on a TLS listener is not supported", "UnsupportedValue"
        server["tls"] = {"mode": "SIMPLE", "credentialName": ref.name}
    return server, "", ""


def _gateways(resources: list[Resource[Any]], grants: tuple[Resource[Any], ...],
              model: GatewayApiModel) -> dict[tuple[str, str], list[_Listener]]:
    listeners: dict[tuple[str, str], list[_Listener]] = {}
    classes = {r.name: r for r in resources if r.kind == "GatewayClass"}
    served = served_classes(r.raw for r in classes.values())
    for res in classes.values():
        ours = res.spec.controller_name == CONTROLLER_NAME
        if ours and res.spec.parameters_ref:
            model.finding(res, "spec.parametersRef", "parametersRef is not yet supported by "
                          "Ratline; ignored")
        if ours:
            model.status[res.key] = {"conditions": [condition("Accepted", True, "Accepted", "")]}
    for gw in (r for r in resources if r.kind == KUBERNETES_GATEWAY):
        if gw.spec.gateway_class_name not in served:
            model.finding(gw, "spec.gatewayClassName", f"gatewayClassName "
                          f"{gw.spec.gateway_class_name!r} is not served by Ratline (only "
                          f"{ISTIO_CLASS!r} and GatewayClasses of controllerName "
                          f"{CONTROLLER_NAME}); the Gateway is ignored")
            continue
        for name in ("addresses", "infrastructure"):
            if getattr(gw.spec, name):
                model.finding(gw, f"spec.{name}", f"{name} is not yet supported by Ratline "
                              "(the local runtime picks the gateway's ports); ignored")
        entries: list[_Listener] = []
        listener_status: list[dict[str, Any]] = []
        for index, listener in enumerate(gw.spec.listeners):
            server, problem, reason = _server(
                listener, gw, grants, f"spec.listeners[{index}]", model
            )
            name = istio_gateway_name(gw.name, listener.name)
            if server is not None:
                namespace = server.pop("_namespace", gw.namespace)
                spec = GatewaySpec.model_validate(
                    {"selector": selector_for(gw.name, gw.namespace), "servers": [server]},
                    by_alias=True, by_name=False,
                )
                model.gateways.append(_synthetic("Gateway", name, namespace, spec, gw))
                entries.append(_Listener(gw, listener, name, namespace))
            listener_status.append({"name": listener.name, "problem": problem,
                                    "reason": reason})
        listeners[(gw.namespace, gw.name)] = entries
        model.status[gw.key] = {"_listeners": listener_status}
    return listeners


def _namespace_labels(resources: Iterable[Resource[Any]]) -> dict[str, Mapping[str, str]]:
    return {r.name: r.labels for r in resources if r.kind == "Namespace"}


def _allows(entry: _Listener, route: Resource[Any], ns_labels: Mapping[str, Mapping[str, str]]
            ) -> str:
    """Why the listener does not accept the route ('' when it does)."""
    if entry.listener.protocol not in ROUTE_PROTOCOLS[route.kind]:
        return "NotAllowedByListeners"
    allowed = entry.listener.allowed_routes
    namespaces = allowed.namespaces if allowed is not None else None
    where_from = namespaces.from_ if namespaces is not None else "Same"
    if where_from == "Same" and route.namespace != entry.gateway.namespace:
        return "NotAllowedByListeners"
    if where_from == "Selector":
        selector = namespaces.selector if namespaces is not None else None
        wanted = selector.match_labels if selector is not None else {}
        labels = ns_labels.get(route.namespace, {})
        if any(labels.get(k) != v for k, v in wanted.items()):
            return "NotAllowedByListeners"
        if selector is not None and selector.match_expressions:
            return "NotAllowedByListeners"  # reported on the Gateway: not evaluated
    if allowed is not None and allowed.kinds and not any(
        k.kind == route.kind and (k.group or GATEWAY_API_GROUP) == GATEWAY_API_GROUP
        for k in allowed.kinds
    ):
        return "NotAllowedByListeners"
    hostnames = getattr(route.spec, "hostnames", ())
    host = entry.listener.hostname
    if host and hostnames and not any(_hosts_meet(host, h) for h in hostnames):
        return "NoMatchingListenerHostname"
    return ""


def _hosts_meet(a: str, b: str) -> bool:
    if a == b:
        return True
    for wild, other in ((a, b), (b, a)):
        if wild.startswith("*.") and other.endswith(wild[1:]):
            return True
    return False


def _parents(route: Resource[Any], listeners: Mapping[tuple[str, str], list[_Listener]],
             ns_labels: Mapping[str, Mapping[str, str]], model: GatewayApiModel
             ) -> list[tuple[Any, list[_Listener], str]]:
    """Each parentRef served by Ratline with the listeners that accept the route (and
    the reason when none does)."""
    found: list[tuple[Any, list[_Listener], str]] = []
    for index, ref in enumerate(route.spec.parent_refs):
        if (ref.group or GATEWAY_API_GROUP) != GATEWAY_API_GROUP or (ref.kind or "Gateway") != (
            "Gateway"
        ):
            model.finding(route, f"spec.parentRefs[{index}]", f"a {ref.kind} parent (the "
                          "Gateway API for the mesh, GAMMA) is not yet supported by Ratline; "
                          "ignored")
            continue
        entries = listeners.get((ref.namespace or route.namespace, ref.name))
        if entries is None:
            found.append((ref, [], "NoMatchingParent"))
            continue
        candidates = [
            e for e in entries
            if ref.section_name in (None, e.listener.name) and ref.port in (None, e.listener.port)
        ]
        reasons = [_allows(e, route, ns_labels) for e in candidates]
        accepted = [e for e, why in zip(candidates, reasons, strict=True) if not why]
        reason = "" if accepted else (reasons[0] if reasons else "NoMatchingParent")
        found.append((ref, accepted, reason))
    return found


def _route(route: Resource[Any], ctx: RouteContext, parents: list[tuple[Any, list[_Listener],
           str]], model: GatewayApiModel) -> None:
    refs = Refs()
    attached = [e for _ref, entries, _why in parents for e in entries]
    spec: dict[str, Any] = {"hosts": list(getattr(route.spec, "hostnames", ())) or ["*"]}
    if route.kind in ("HTTPRoute", "GRPCRoute"):
        spec["http"] = http_rules(ctx, refs)
    else:
        rules = l4_routes(ctx, refs)
        key = "tcp" if route.kind == "TCPRoute" else "tls"
        snis = list(getattr(route.spec, "hostnames", ())) or ["*"]
        built = []
        for routes in rules:
            if not routes:
                continue
            rule: dict[str, Any] = {"route": routes}
            if key == "tls":
                rule["match"] = [{"sniHosts": snis}]
            built.append(rule)
        spec[key] = built
    for where, what in refs.unsupported:
        model.finding(route, where, f"{what} is not yet supported by Ratline; ignored")
    problem = ""
    if attached:
        spec["gateways"] = sorted({f"{e.istio_namespace}/{e.istio_name}" for e in attached})
        try:
            vs = VirtualServiceSpec.model_validate(spec, by_alias=True, by_name=False)
        except ValidationError as exc:
            problem = f"not translated: {exc.errors()[0].get('msg')}"
            model.finding(route, "spec", problem)
        else:
            model.virtual_services.append(
                _synthetic("VirtualService", f"{route.name}-{route.kind.lower()}",
                           route.namespace, vs, route)
            )
            for e in attached:
                e.attached += 1
    reason_refs = refs.problems[0][0] if refs.problems else ""
    text_refs = "; ".join(f"{w}: {t}" for _r, w, t in refs.problems)
    model.status[route.key] = {
        "parents": [
            {
                "parentRef": ref.model_dump(by_alias=True, exclude_none=True),
                "controllerName": CONTROLLER_NAME,
                "conditions": [
                    condition("Accepted", bool(entries) and not problem, "Accepted",
                              why or "UnsupportedValue", problem),
                    condition("ResolvedRefs", not refs.problems, "ResolvedRefs", reason_refs,
                              text_refs or "All references resolved"),
                ],
            }
            for ref, entries, why in parents
        ]
    }


def _gateway_status(gw: Resource[Any], entries: list[_Listener], model: GatewayApiModel) -> None:
    draft = model.status[gw.key].pop("_listeners")
    attached = {e.listener.name: e.attached for e in entries}
    listeners = []
    for item in draft:
        reason, problem = item["reason"], item["problem"]
        refs_bad = reason in ("InvalidCertificateRef", "RefNotPermitted")
        listeners.append({
            "name": item["name"],
            "attachedRoutes": attached.get(item["name"], 0),
            "conditions": [
                condition("Accepted", refs_bad or not reason, "Accepted", reason, problem),
                condition("ResolvedRefs", not refs_bad, "ResolvedRefs", reason,
                          problem if refs_bad else "All references resolved"),
                condition("Programmed", not reason, "Programmed", "Invalid",
                          problem or "Resource programmed"),
            ],
        })
    bad = [i for i in draft if i["reason"]]
    message = "; ".join(f"listener {i['name']}: {i['problem']}" for i in bad)
    model.status[gw.key] = {
        "conditions": [
            condition("Accepted", True, "Accepted", "Invalid",
                      message or "Resource accepted"),
            condition("Programmed", len(bad) < len(draft), "Programmed", "Invalid",
                      message or "Resource programmed"),
        ],
        "listeners": listeners,
    }


def convert(resources: Iterable[Resource[Any]], services: Mapping[str, Any],
            domain_suffix: str = "cluster.local") -> GatewayApiModel:
    """The Istio-shaped Gateways and VirtualServices, statuses and findings of the
    Gateway API resources among `resources`."""
    resources = list(resources)
    model = GatewayApiModel()
    grants = tuple(r for r in resources if r.kind == "ReferenceGrant")
    listeners = _gateways(resources, grants, model)
    ns_labels = _namespace_labels(resources)
    for route in resources:
        if route.kind not in ROUTE_PROTOCOLS:
            continue
        parents = _parents(route, listeners, ns_labels, model)
        _route(route, RouteContext(route, services, grants, domain_suffix), parents, model)
    for gw in (r for r in resources if r.kind == KUBERNETES_GATEWAY):
        if (gw.namespace, gw.name) in listeners:
            _gateway_status(gw, listeners[(gw.namespace, gw.name)], model)
    return model


__all__ = ["GatewayApiModel", "condition", "convert"]
