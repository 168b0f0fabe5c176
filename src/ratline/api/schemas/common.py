"""Building blocks shared by every schema: the base model, durations, bounded numbers.

All schema models derive from `Spec`: immutable, unknown fields refused, Python
attributes in snake_case and YAML/JSON keys in camelCase as Istio writes them.
Sequences are tuples so that specs stay immutable.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Annotated, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    Strict,
)
from pydantic.alias_generators import to_camel


class Spec(BaseModel):
    """Base of every schema model."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        frozen=True,
        strict=True,
    )


T = TypeVar("T")

Seq = Annotated[tuple[T, ...], Strict(False)]
"""A YAML list, held as a tuple; the items are validated strictly."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|us|µs|ns|m|s)")
_UNIT_SECONDS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


def parse_duration(value: object) -> float:
    """Parse an Istio duration (`1s`, `0.5s`, `100ms`, `1m`, `1h30m`) into seconds.

    Raises ValueError with a short message for anything else.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("must be a duration such as 1s, 0.5s, 100ms, 1m")
    text = value.strip()
    if not text:
        raise ValueError("must be a duration such as 1s, 0.5s, 100ms, 1m")
    total = 0.0
    pos = 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise ValueError(f"invalid duration {value!r}: use e.g. 1s, 0.5s, 100ms, 1m")
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    return total


def format_duration(seconds: float) -> str:
    """The inverse of `parse_duration`: `1.5` → `1.5s`, `0.1` → `0.1s`."""
    text = f"{seconds:.9f}".rstrip("0").rstrip(".")
    return f"{text or '0'}s"


def _positive_duration(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be greater than 0")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""An Istio duration, held as seconds (float)."""

PositiveDuration = Annotated[Duration, AfterValidator(_positive_duration)]
"""A duration that must be greater than zero (timeouts, intervals)."""


def _int_range(low: int, high: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"must be {low}..{high}")
        return value

    return check


def _float_range(low: float, high: float) -> Callable[[float], float]:
    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be {low:g}..{high:g}")
        return value

    return check


def _at_least(low: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"must be {low} or more")
        return value

    return check


PortNumber = Annotated[int, AfterValidator(_int_range(1, 65535))]
"""A TCP/UDP port, 1..65535."""

Weight = Annotated[int, AfterValidator(_int_range(0, 100))]
"""A route weight, 0..100."""

HttpStatus = Annotated[int, AfterValidator(_int_range(200, 599))]
"""An HTTP status code, 200..599."""

IntPercent = Annotated[int, AfterValidator(_int_range(0, 100))]
"""A whole percentage, 0..100."""

FloatPercent = Annotated[float, AfterValidator(_float_range(0.0, 100.0))]
"""A percentage with decimals, 0..100."""

NonNegativeInt = Annotated[int, AfterValidator(_at_least(0))]
PositiveInt = Annotated[int, AfterValidator(_at_least(1))]


def _non_empty(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    return value


NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]


def _ip_or_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or CIDR block") from None
    return value


IpOrCidr = Annotated[str, AfterValidator(_ip_or_cidr)]
"""An IPv4/IPv6 address or CIDR block (`10.0.0.0/8`, `192.168.1.7`)."""

_NOT_RE2 = (
    ("(?=", "lookahead"),
    ("(?!", "negative lookahead"),
    ("(?<=", "lookbehind"),
    ("(?<!", "negative lookbehind"),
    ("(?>", "atomic group"),
    ("(?(", "conditional group"),
    ("(?P=", "backreference"),
)
MAX_REGEX_LENGTH = 4096
"""Envoy's default `max_program_size` bounds compiled size; this bounds the source."""


def _re2_regex(value: str) -> str:
    """Refuse what RE2 (Envoy's regex engine) cannot compile, before Envoy sees it."""
    if len(value) > MAX_REGEX_LENGTH:
        raise ValueError(f"regex longer than {MAX_REGEX_LENGTH} characters")
    for token, what in _NOT_RE2:
        if token in value:
            raise ValueError(f"invalid regex {value!r}: RE2 has no {what} ({token}…)")
    if re.search(r"(?<!\\)\\[1-9]", value):
        raise ValueError(f"invalid regex {value!r}: RE2 has no backreferences")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regex {value!r}: {exc}") from None
    return value


Re2Regex = Annotated[str, AfterValidator(_re2_regex)]
"""A regular expression Envoy's RE2 accepts (checked with Python's `re` plus RE2's limits)."""

PRESENT_REGEX = "*"
"""Istio reads the match regex `*` (not RE2) as "the header or parameter is present"."""


def _re2_regex_or_present(value: str) -> str:
    return value if value == PRESENT_REGEX else _re2_regex(value)


Re2RegexOrPresent = Annotated[str, AfterValidator(_re2_regex_or_present)]
"""A StringMatch regex: RE2, or Istio's `*` for "present"."""


def only_one_of(model: BaseModel, names: tuple[str, ...], required: bool) -> None:
    """Raise ValueError unless at most one (or exactly one, if required) field is set."""
    chosen = [name for name in names if getattr(model, name) is not None]
    aliases = [to_camel(name) for name in names]
    if len(chosen) > 1:
        raise ValueError(f"set only one of {', '.join(aliases)}")
    if required and not chosen:
        raise ValueError(f"set one of {', '.join(aliases)}")


class Percent(Spec):
    """Istio's Percent message: `{value: 12.5}`."""

    value: FloatPercent = 0.0


class PortSelector(Spec):
    """Istio's PortSelector: `{number: 9080}`."""

    number: PortNumber


class WorkloadSelector(Spec):
    """Selects workloads by labels (Sidecar, ServiceEntry): `{labels: {...}}`."""

    labels: dict[str, str] = {}


class LabelSelector(Spec):
    """Kubernetes-style selector used by security policies: `{matchLabels: {...}}`."""

    match_labels: dict[str, str] = {}


class PolicyTargetReference(Spec):
    """A reference to a Gateway API resource a policy attaches to."""

    group: str = ""
    kind: str
    name: str
    namespace: str = ""
