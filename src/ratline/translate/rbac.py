"""One AuthorizationPolicy rule → one Envoy RBAC `Policy` (permissions and principals).

Istio semantics kept here: a rule matches when one of its `from`s, one of its `to`s and
every `when` match; inside a `from`/`to` every set field must match, and a field matches
when any of its values does (its `not` form when none does). Values take Istio's
wildcards: `*` (present), `prefix*`, `*suffix`. Principals are SPIFFE names without the
`spiffe://` scheme; request principals are `ISS/SUB` from the verified JWT, whose claims
Ratline's jwt_authn filter leaves in dynamic metadata (`ratline.translate.jwt`).

The destination port is known when translating (one inbound listener per port), so port
conditions are decided here rather than in Envoy. A field Ratline cannot translate raises
`Untranslatable`; the caller decides what that means for the policy's action (Istio's
rule: an ALLOW rule is dropped, a DENY rule loses the field and so matches more).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.type.matcher.v3 import metadata_pb2, path_pb2, string_pb2, value_pb2

from ratline.translate.jwt import JWT_FILTER, PAYLOAD_KEY
from ratline.translate.security_targets import HEADER_NAME

SPIFFE = "spiffe://"
_CLAIMS = re.compile(r"^request\.auth\.claims((?:\[[^\[\]]+\])+)$")
_HEADER = re.compile(r"^request\.headers\[([^\[\]]+)\]$")


class Untranslatable(Exception):
    """A field or value Ratline cannot express; `field` is relative to the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RuleContext:
    """What translation knows about the request before Envoy sees it."""

    port: int
    """The destination port (container port for a sidecar, listen port for a gateway)."""
    lenient: bool = False
    """True for DENY-like actions: drop what cannot be translated instead of the rule."""


# ---- string matchers --------------------------------------------------------------------


def string_match(value: str, *, ignore_case: bool = False, prefix: str = "") -> Any:
    """Istio's value wildcards as a StringMatcher: `*`, `pre*`, `*suf`, or exact."""
    if value == "*":
        return string_pb2.StringMatcher(safe_regex={"regex": re.escape(prefix) + ".+"})
    if value.startswith("*"):
        return string_pb2.StringMatcher(suffix=value[1:], ignore_case=ignore_case)
    if value.endswith("*"):
        text = prefix + value[:-1]
        if not text:
            return string_pb2.StringMatcher(safe_regex={"regex": ".*"})
        return string_pb2.StringMatcher(prefix=text, ignore_case=ignore_case)
    return string_pb2.StringMatcher(exact=prefix + value, ignore_case=ignore_case)


def _header(name: str, value: str, *, ignore_case: bool = False) -> Any:
    matcher = route_components_pb2.HeaderMatcher(name=name)
    if value == "*":
        matcher.present_match = True
    else:
        matcher.string_match.CopyFrom(string_match(value, ignore_case=ignore_case))
    return matcher


def _cidr(value: str, field: str) -> address_pb2.CidrRange:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise Untranslatable(field, f"{value!r} is not an IP address or CIDR") from None
    return address_pb2.CidrRange(
        address_prefix=str(network.network_address), prefix_len={"value": network.prefixlen}
    )


def _metadata(path: Sequence[str], value: value_pb2.ValueMatcher) -> Any:
    matcher = metadata_pb2.MetadataMatcher(filter=JWT_FILTER, value=value)
    for key in (PAYLOAD_KEY, *path):
        matcher.path.add(key=key)
    return matcher


def _claim_ids(path: Sequence[str], value: str) -> list[rbac_pb2.Principal]:
    """A claim equal to `value`, or a list claim containing it."""
    if value == "*":
        present = value_pb2.ValueMatcher(present_match=True)
        return [rbac_pb2.Principal(metadata=_metadata(path, present))]
    one = value_pb2.ValueMatcher(string_match=string_match(value))
    listed = value_pb2.ValueMatcher()
    listed.list_match.one_of.CopyFrom(one)
    return [
        rbac_pb2.Principal(metadata=_metadata(path, one)),
        rbac_pb2.Principal(metadata=_metadata(path, listed)),
    ]


# ---- combinators --------------------------------------------------------------------------


def _any_id() -> rbac_pb2.Principal:
    return rbac_pb2.Principal(any=True)


def _any_rule() -> rbac_pb2.Permission:
    return rbac_pb2.Permission(any=True)


def _or_ids(ids: Sequence[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    if len(ids) == 1:
        return ids[0]
    principal = rbac_pb2.Principal()
    principal.or_ids.ids.extend(ids)
    return principal


def _and_ids(ids: Sequence[rbac_pb2.Principal]) -> rbac_pb2.Principal:
    if not ids:
        return _any_id()
    if len(ids) == 1:
        return ids[0]
    principal = rbac_pb2.Principal()
    principal.and_ids.ids.extend(ids)
    return principal


def _or_rules(rules: Sequence[rbac_pb2.Permission]) -> rbac_pb2.Permission:
    if len(rules) == 1:
        return rules[0]
    permission = rbac_pb2.Permission()
    permission.or_rules.rules.extend(rules)
    return permission


def _and_rules(rules: Sequence[rbac_pb2.Permission]) -> rbac_pb2.Permission:
    if not rules:
        return _any_rule()
    if len(rules) == 1:
        return rules[0]
    permission = rbac_pb2.Permission()
    permission.and_rules.rules.extend(rules)
    return permission


def _not_id(principal: rbac_pb2.Principal) -> rbac_pb2.Principal:
    return rbac_pb2.Principal(not_id=principal)


def _not_rule(permission: rbac_pb2.Permission) -> rbac_pb2.Permission:
    return rbac_pb2.Permission(not_rule=permission)


def _never_rule() -> rbac_pb2.Permission:
    return _not_rule(_any_rule())


# ---- source (principals) --------------------------------------------------------------------


def principal_id(value: str) -> rbac_pb2.Principal:
    """A peer's SPIFFE identity, `cluster.local/ns/NS/sa/SA` with wildcards."""
    matcher = string_match(value, prefix=SPIFFE)
    return rbac_pb2.Principal(authenticated={"principal_name": matcher})


def namespace_id(value: str) -> rbac_pb2.Principal:
    """A peer from namespace `value` (wildcards allowed), read from its SPIFFE identity."""
    if value == "*":
        pattern = r".*/ns/[^/]+/.*"
    elif value.startswith("*"):
        pattern = rf".*/ns/[^/]*{re.escape(value[1:])}/.*"
    elif value.endswith("*"):
        pattern = rf".*/ns/{re.escape(value[:-1])}[^/]*/.*"
    else:
        pattern = rf".*/ns/{re.escape(value)}/.*"
    matcher = string_pb2.StringMatcher(safe_regex={"regex": pattern})
    return rbac_pb2.Principal(authenticated={"principal_name": matcher})


def request_principal_id(value: str) -> rbac_pb2.Principal:
    """A verified JWT's `ISS/SUB` (split at the last `/`); `*` means any verified token."""
    iss_path, sub_path = ("iss",), ("sub",)
    if value == "*":
        return _claim_ids(iss_path, "*")[0]
    issuer, slash, subject = value.rpartition("/")
    if not slash:
        if value.startswith("*"):
            return _and_ids([_claim_ids(iss_path, "*")[0], _claim_ids(sub_path, value)[0]])
        return _and_ids([_claim_ids(iss_path, value)[0], _claim_ids(sub_path, "*")[0]])
    return _and_ids([_claim_ids(iss_path, issuer or "*")[0], _claim_ids(sub_path, subject)[0]])


def _ip_id(value: str, field: str, *, remote: bool) -> rbac_pb2.Principal:
    cidr = _cidr(value, field)
    if remote:
        return rbac_pb2.Principal(remote_ip=cidr)
    return rbac_pb2.Principal(direct_remote_ip=cidr)


def _values_id(
    values: Sequence[str],
    not_values: Sequence[str],
    make: Callable[[str], rbac_pb2.Principal],
) -> list[rbac_pb2.Principal]:
    ids = []
    if values:
        ids.append(_or_ids([make(v) for v in values]))
    if not_values:
        ids.append(_not_id(_or_ids([make(v) for v in not_values])))
    return ids


def source_principal(source: Any, field: str) -> rbac_pb2.Principal:
    """One `from.source`: every set field must match."""
    ids: list[rbac_pb2.Principal] = []
    ids += _values_id(source.principals, source.not_principals, principal_id)
    ids += _values_id(
        source.request_principals, source.not_request_principals, request_principal_id
    )
    ids += _values_id(source.namespaces, source.not_namespaces, namespace_id)
    ids += _values_id(
        source.ip_blocks,
        source.not_ip_blocks,
        lambda v: _ip_id(v, f"{field}.ipBlocks", remote=False),
    )
    ids += _values_id(
        source.remote_ip_blocks,
        source.not_remote_ip_blocks,
        lambda v: _ip_id(v, f"{field}.remoteIpBlocks", remote=True),
    )
    return _and_ids(ids)


# ---- operation (permissions) -----------------------------------------------------------------


def host_rule(value: str) -> rbac_pb2.Permission:
    """The request's host (case-insensitive), with or without a port after it."""
    exact = rbac_pb2.Permission(header=_header(":authority", value, ignore_case=True))
    if value == "*" or value.endswith("*") or ":" in value:
        return exact
    with_port = route_components_pb2.HeaderMatcher(name=":authority")
    with_port.string_match.CopyFrom(string_match(value + ":*", ignore_case=True))
    return _or_rules([exact, rbac_pb2.Permission(header=with_port)])


def path_rule(value: str) -> rbac_pb2.Permission:
    """The request path without its query string."""
    return rbac_pb2.Permission(url_path=path_pb2.PathMatcher(path=string_match(value)))


def method_rule(value: str) -> rbac_pb2.Permission:
    return rbac_pb2.Permission(header=_header(":method", value))


def port_matches(value: str, port: int, field: str) -> bool:
    """Whether an Istio port string names `port` (decided at translation time)."""
    try:
        number = int(value)
    except ValueError:
        raise Untranslatable(field, f"port {value!r} is not a number") from None
    if not 0 < number < 65536:
        raise Untranslatable(field, f"port {value!r} must be 1..65535")
    return number == port


def _port_rule(values: Sequence[str], port: int, field: str) -> rbac_pb2.Permission:
    hit = any([port_matches(v, port, field) for v in values])
    return _any_rule() if hit else _never_rule()


def _values_rule(
    values: Sequence[str],
    not_values: Sequence[str],
    make: Callable[[str], rbac_pb2.Permission],
) -> list[rbac_pb2.Permission]:
    rules = []
    if values:
        rules.append(_or_rules([make(v) for v in values]))
    if not_values:
        rules.append(_not_rule(_or_rules([make(v) for v in not_values])))
    return rules


def operation_permission(operation: Any, port: int, field: str) -> rbac_pb2.Permission:
    """One `to.operation`: every set field must match."""
    rules: list[rbac_pb2.Permission] = []
    rules += _values_rule(operation.hosts, operation.not_hosts, host_rule)
    rules += _values_rule(operation.methods, operation.not_methods, method_rule)
    rules += _values_rule(operation.paths, operation.not_paths, path_rule)
    if operation.ports:
        rules.append(_port_rule(operation.ports, port, f"{field}.ports"))
    if operation.not_ports:
        rules.append(_not_rule(_port_rule(operation.not_ports, port, f"{field}.notPorts")))
    return _and_rules(rules)


# ---- conditions ---------------------------------------------------------------------------------


def _claim_path(key: str) -> list[str] | None:
    found = _CLAIMS.match(key)
    if not found:
        return None
    return re.findall(r"\[([^\[\]]+)\]", found.group(1))


def _condition_principal(key: str, field: str) -> Callable[[str], rbac_pb2.Principal] | None:
    header = _HEADER.match(key)
    if header:
        name = header.group(1)
        if not HEADER_NAME.match(name):
            raise Untranslatable(f"{field}.key", f"{name!r} is not an HTTP header name")
        return lambda v: rbac_pb2.Principal(header=_header(name.lower(), v))
    claim = _claim_path(key)
    if claim is not None:
        return lambda v: _or_ids(_claim_ids(claim, v))
    simple: dict[str, Callable[[str], rbac_pb2.Principal]] = {
        "source.ip": lambda v: _ip_id(v, field, remote=False),
        "remote.ip": lambda v: _ip_id(v, field, remote=True),
        "source.namespace": namespace_id,
        "source.principal": principal_id,
        "request.auth.principal": request_principal_id,
        "request.auth.audiences": lambda v: _or_ids(_claim_ids(("aud",), v)),
        "request.auth.presenter": lambda v: _or_ids(_claim_ids(("azp",), v)),
    }
    return simple.get(key)


def _condition_permission(
    key: str, field: str, port: int
) -> Callable[[str], rbac_pb2.Permission] | None:
    if key == "destination.port":
        return lambda v: _any_rule() if port_matches(v, port, field) else _never_rule()
    if key == "destination.ip":
        return lambda v: rbac_pb2.Permission(destination_ip=_cidr(v, field))
    if key == "connection.sni":
        return lambda v: rbac_pb2.Permission(requested_server_name=string_match(v))
    return None


@dataclass
class _Conditions:
    principals: list[rbac_pb2.Principal]
    permissions: list[rbac_pb2.Permission]


def condition_parts(condition: Any, ctx: RuleContext, path: str) -> _Conditions:
    """One `when` entry as principal or permission matchers."""
    as_principal = _condition_principal(condition.key, path)
    if as_principal is not None:
        return _Conditions(_values_id(condition.values, condition.not_values, as_principal), [])
    as_permission = _condition_permission(condition.key, path, ctx.port)
    if as_permission is not None:
        return _Conditions([], _values_rule(condition.values, condition.not_values, as_permission))
    raise Untranslatable(f"{path}.key", f"condition key {condition.key!r} is not supported")


def conditions(
    when: Sequence[Any], ctx: RuleContext, field: str, dropped: list[Untranslatable]
) -> _Conditions | None:
    """The `when` list split into what Envoy checks on the caller and on the request.

    None when a condition cannot be translated in a strict context; in a lenient one that
    condition is left out. Either way it is reported in `dropped`.
    """
    out = _Conditions([], [])
    for index, condition in enumerate(when):
        try:
            one = condition_parts(condition, ctx, f"{field}[{index}]")
        except Untranslatable as exc:
            dropped.append(exc)
            if not ctx.lenient:
                return None
            continue
        out.principals += one.principals
        out.permissions += one.permissions
    return out


# ---- one rule -----------------------------------------------------------------------------------


def rule_policy(
    rule: Any, ctx: RuleContext, field: str, dropped: list[Untranslatable]
) -> rbac_pb2.Policy | None:
    """The RBAC policy of one rule; None when it cannot be translated in a strict context.

    In a lenient context (DENY, AUDIT, CUSTOM), untranslatable parts are left out (the rule
    matches more) and reported in `dropped`; in a strict one (ALLOW) they drop the rule.
    """
    cond = conditions(rule.when, ctx, f"{field}.when", dropped)
    if cond is None:
        return None
    principals = _part(
        [f.source for f in rule.from_],
        lambda s, i: source_principal(s, f"{field}.from[{i}].source"),
        ctx,
        dropped,
        _any_id,
    )
    permissions = _part(
        [t.operation for t in rule.to],
        lambda o, i: operation_permission(o, ctx.port, f"{field}.to[{i}].operation"),
        ctx,
        dropped,
        _any_rule,
    )
    if principals is None or permissions is None:
        return None
    policy = rbac_pb2.Policy()
    policy.principals.append(_and_ids([principals, *cond.principals]))
    policy.permissions.append(_and_rules([permissions, *cond.permissions]))
    return policy


def _part(
    items: Sequence[Any],
    make: Callable[[Any, int], Any],
    ctx: RuleContext,
    dropped: list[Untranslatable],
    anything: Callable[[], Any],
) -> Any | None:
    """OR of the `from`s (or `to`s): anything when there are none."""
    if not items:
        return anything()
    built = []
    for index, item in enumerate(items):
        try:
            built.append(make(item, index))
        except Untranslatable as exc:
            dropped.append(exc)
            if not ctx.lenient:
                return None
            built.append(anything())
    if isinstance(built[0], rbac_pb2.Principal):
        return _or_ids(built)
    return _or_rules(built)
