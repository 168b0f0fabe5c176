"""Small pieces every translation module shares: durations, the ADS config source, typed
extension configs, and the collector of findings (features translated partly or not at all).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import config_source_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from ratline.api.envelope import Resource, Source
from ratline.api.errors import ConfigMessage, Severity

TYPE_URL_PREFIX = "type.googleapis.com/"

NOT_SUPPORTED = "RAT0001"
"""Finding code: a field is valid Istio config but Ratline does not translate it yet."""
UNRESOLVED = "RAT0002"
"""Finding code: config refers to a host, port, subset or gateway that does not exist."""
CONFLICT = "RAT0003"
"""Finding code: two resources claim the same thing; one is ignored."""
DEFAULTED = "RAT0004"
"""Finding code: config left something open and Ratline chose (e.g. equal weights)."""

_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def type_url(message: Message | type[Message]) -> str:
    """`type.googleapis.com/envoy.config.cluster.v3.Cluster` for a message or its class."""
    return TYPE_URL_PREFIX + message.DESCRIPTOR.full_name


def pack_any(message: Message) -> any_pb2.Any:
    """A message packed in an Any (for typed_config fields)."""
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def seconds(value: Any) -> float:
    """Seconds in an Istio duration: `1.5s`, `300ms`, `1h30m`, a timedelta or a number."""
    if value is None:
        raise ValueError("no duration")
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not _DURATION.match(text):
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def duration(value: Any) -> duration_pb2.Duration:
    """A protobuf Duration from an Istio duration (see `seconds`)."""
    total = seconds(value)
    whole = int(total)
    return duration_pb2.Duration(seconds=whole, nanos=round((total - whole) * 1e9))


def ads_config_source() -> config_source_pb2.ConfigSource:
    """`{ads: {}, resource_api_version: V3}`: fetch the resource over the ADS stream."""
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.ApiVersion.V3,
    )


def age_key(resource: Resource[Any]) -> tuple[bool, str, str, str]:
    """Istio's order among equals: oldest first (creationTimestamp when the resource has
    one), then by namespace and name."""
    metadata = resource.raw.get("metadata")
    created = metadata.get("creationTimestamp") if isinstance(metadata, Mapping) else None
    return (created is None, str(created or ""), resource.namespace, resource.name)


def labels_match(selector: Any, labels: Any) -> bool:
    """Whether every key/value of `selector` is in `labels` (an empty selector matches all)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


@dataclass
class Findings:
    """What translation could not do, as warnings naming the resource and field."""

    messages: list[ConfigMessage] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)

    def add(
        self,
        resource: Resource[Any] | None,
        field_path: str,
        message: str,
        code: str = NOT_SUPPORTED,
    ) -> None:
        """Record one finding once (translation may visit the same field for many proxies)."""
        finding = ConfigMessage(
            message=message,
            source=resource.source if resource is not None else Source(),
            resource=resource.key if resource is not None else None,
            field=field_path,
            severity=Severity.WARNING,
            code=code,
        )
        text = str(finding)
        if text not in self._seen:
            self._seen.add(text)
            self.messages.append(finding)

    def not_supported(self, resource: Resource[Any], field_path: str, what: str) -> None:
        self.add(resource, field_path, f"{what} is not yet supported by Ratline; ignored")

    def extend(self, messages: Iterable[ConfigMessage]) -> None:
        for m in messages:
            if str(m) not in self._seen:
                self._seen.add(str(m))
                self.messages.append(m)
