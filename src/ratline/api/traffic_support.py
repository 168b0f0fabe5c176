"""What Ratline does with each field of Istio's traffic API (VirtualService,
DestinationRule, Gateway, ServiceEntry), in one table that three things read: the
analyzer that reports fields valid in Istio but not translated here
(`unsupported_fields`, RAT0001, at `ratline apply` and `ratline analyze`),
`docs/traffic.md`, and the test that keeps the page equal to this table and to the
schemas.

Fields are named per message, as Istio's reference does (`HTTPRoute.fault`,
`TrafficPolicy.tunnel`): a message used in several places (a TrafficPolicy at the top, in
a subset, a port-level setting) has one row per field. A field not in `SUPPORT` is
supported.

The Gateway API's kinds are not in this table: `ratline.model.gateway_api` converts them
into these Istio kinds and reports (RAT0001, at apply and analyze) what it leaves out.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from ratline.api.envelope import Resource
from ratline.api.errors import ConfigMessage, Severity
from ratline.api.schemas.networking import (
    DestinationRuleSpec,
    GatewaySpec,
    ServiceEntrySpec,
    VirtualServiceSpec,
)

NOT_SUPPORTED = "RAT0001"
"""The code of a field that is valid Istio config but that Ratline does not translate."""


class Status(StrEnum):
    SUPPORTED = "supported"
    IGNORED = "ignored"
    """Valid Istio, not translated: reported with `Support.message`, otherwise ignored."""
    REFUSED = "refused"
    """Refused by the schema (Istio's validation refuses it too), with `Support.message`."""


@dataclass(frozen=True)
class Support:
    status: Status
    message: str = ""
    """Ignored: the finding shown when the field is set; refused: the schema's error."""
    by_translation: bool = False
    """Ignored, but reported by translation (where the context gives a better message),
    not by the analyzer."""


def _each(support: Support, *fields: str) -> dict[str, Support]:
    return dict.fromkeys(fields, support)


def _ignored(what: str) -> Support:
    return Support(Status.IGNORED, f"{what} is not yet supported by Ratline; ignored")


SUPPORT: Mapping[str, Mapping[str, Support]] = {
    "FaultDelay": {
        "exponentialDelay": Support(
            Status.REFUSED, "exponentialDelay is not supported (by Istio either)"
        ),
    },
    "FaultAbort": {
        "http2Error": Support(
            Status.REFUSED, "http2Error abort is not supported (by Istio either)"
        ),
    },
    "DestinationRule": {
        "workloadSelector": _ignored("a DestinationRule workloadSelector"),
    },
    "DestinationRuleWorkloadSelector": {
        "matchLabels": _ignored("a DestinationRule workloadSelector")
    },
    "TrafficPolicy": {
        "tunnel": _ignored("tunnel (HTTP CONNECT or POST tunnelling)"),
        "proxyProtocol": _ignored("proxyProtocol"),
    },
    "TunnelSettings": _each(
        _ignored("tunnel (HTTP CONNECT or POST tunnelling)"), "protocol", "targetHost", "targetPort"
    ),
    "ProxyProtocol": {"version": _ignored("proxyProtocol")},
    "RetryBudget": {
        "budgetInterval": Support(
            Status.IGNORED,
            "retryBudget budgetInterval is not supported by Envoy 1.40 (only active and "
            "pending requests count); ignored",
        ),
    },
    "LoadBalancerSettings": {"zoneAwareLbSetting": _ignored("zoneAwareLbSetting")},
    "ZoneAwareLoadBalancerSetting": _each(
        _ignored("zoneAwareLbSetting"), "enabled", "failover", "failoverPriority", "minClusterSize"
    ),
    "ZoneAwareFailover": _each(_ignored("zoneAwareLbSetting"), "from", "to"),
    "ClientTLSSettings": {
        "caCrl": Support(Status.IGNORED, _ignored("caCrl").message, by_translation=True),
    },
    "WorkloadEntrySpec": {
        "network": _ignored("network (several networks, east-west gateways)"),
    },
    "Server": {
        "bind": Support(
            Status.IGNORED,
            "bind is not supported in local mode (the gateway listens on RATLINE_BIND_ADDRESS); "
            "ignored",
        ),
        "defaultEndpoint": _ignored("a Gateway server defaultEndpoint"),
    },
    "ServerTLSSettings": {
        "caCrl": _ignored("a gateway server caCrl (certificate revocation list)"),
        "credentialNames": Support(
            Status.IGNORED,
            "credentialNames beyond the first (a second, ECDSA or RSA, certificate) is not "
            "yet supported by Ratline; the first is served",
        ),
    },
}

ROOTS: Mapping[str, type[BaseModel]] = {
    "VirtualService": VirtualServiceSpec,
    "DestinationRule": DestinationRuleSpec,
    "Gateway": GatewaySpec,
    "ServiceEntry": ServiceEntrySpec,
}
"""The traffic kinds and their spec models."""


def message_name(model: type[BaseModel]) -> str:
    """`VirtualServiceSpec` → `VirtualService`; other messages keep their class name."""
    name = model.__name__
    return name.removesuffix("Spec") if model in ROOTS.values() else name


def support_of(message: str, field: str) -> Support:
    return SUPPORT.get(message, {}).get(field, Support(Status.SUPPORTED))


# ---- the schema's messages and fields ----------------------------------------------------


def models_in(annotation: Any) -> Iterator[tuple[type[BaseModel], str]]:
    """Models inside an annotation, with how they repeat: '' one, '[]' a list, '.*' a map."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""
    elif origin is typing.Annotated:
        yield from models_in(args[0])
    elif origin in (typing.Union, types.UnionType):
        for arg in args:
            yield from models_in(arg)
    elif origin is tuple:
        for model, _ in models_in(args[0]):
            yield model, "[]"
    elif origin is dict:
        for model, _ in models_in(args[1]):
            yield model, ".*"


def field_alias(model: type[BaseModel], name: str) -> str:
    info = model.model_fields[name]
    return info.alias or name


def messages_of(root: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """Every message reachable from a spec model, by message name, in schema order."""
    found: dict[str, type[BaseModel]] = {}
    pending = [root]
    while pending:
        model = pending.pop(0)
        name = message_name(model)
        if name in found:
            continue
        found[name] = model
        for info in model.model_fields.values():
            pending.extend(child for child, _ in models_in(info.annotation))
    return found


def fields_of(model: type[BaseModel]) -> list[str]:
    """A message's fields as Istio's YAML names them."""
    return [field_alias(model, name) for name in model.model_fields]


# ---- the analyzer ------------------------------------------------------------------------


def _is_set(value: Any) -> bool:
    return value is not None and value != () and value != {}


def unsupported_fields(resource: Resource[Any]) -> list[ConfigMessage]:
    """RAT0001 for every field of a traffic resource that is set and not translated."""
    if resource.kind not in ROOTS or not isinstance(resource.spec, BaseModel):
        return []
    found: list[ConfigMessage] = []

    def walk(value: BaseModel, path: str) -> None:
        model = type(value)
        message = message_name(model)
        for name in sorted(value.model_fields_set):
            child = getattr(value, name)
            if not _is_set(child):
                continue
            alias = field_alias(model, name)
            where = f"{path}.{alias}"
            support = support_of(message, alias)
            if support.status is Status.IGNORED:
                if not support.by_translation:
                    found.append(
                        ConfigMessage(
                            support.message,
                            resource.source,
                            resource.key,
                            where,
                            severity=Severity.WARNING,
                            code=NOT_SUPPORTED,
                        )
                    )
                continue
            _descend(child, where, walk)

    walk(resource.spec, "spec")
    return sorted(found, key=lambda m: m.field or "")


def _descend(value: Any, path: str, walk: Any) -> None:
    if isinstance(value, BaseModel):
        walk(value, path)
    elif isinstance(value, tuple):
        for index, item in enumerate(value):
            _descend(item, f"{path}[{index}]", walk)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, BaseModel):
                walk(item, f"{path}.{key}")


_INDEX = re.compile(r"\[\d+\]")


def field_at(kind: str, path: str) -> tuple[str, str] | None:
    """The (message, field) a concrete field path names: `spec.http[0].fault` of a
    VirtualService → (HTTPRoute, fault). None for a path outside the schema."""
    model: type[BaseModel] | None = ROOTS.get(kind)
    parts = _INDEX.sub("", path).split(".")
    if model is None or parts[0] != "spec" or len(parts) < 2:
        return None
    parts = parts[1:]
    while parts:
        by_alias = {field_alias(model, n): n for n in model.model_fields}
        name = by_alias.get(parts[0])
        if name is None:
            return None
        if len(parts) == 1:
            return message_name(model), parts[0]
        children = list(models_in(model.model_fields[name].annotation))
        if not children:
            return message_name(model), parts[0]
        child, repeat = children[0]
        skip = 2 if repeat == ".*" else 1  # a map's key is part of the path
        if len(parts) <= skip:
            return message_name(model), parts[0]
        model, parts = child, parts[skip:]
    return None
