"""VirtualService delegation, with Istio's merge rules.

A root VirtualService's rule `delegate: {name, namespace}` hands its traffic to the rules of
a delegate VirtualService (one without hosts). Each delegate rule is merged with the root
rule: its match blocks must each fall inside one of the root's (a prefix under the root's
prefix, the same exact value, no contradicting header, port, source or gateway), and the
merged blocks AND both sides' conditions; a delegate rule that conflicts is left out. What
the delegate rule leaves unset (rewrite, timeout, retries, fault, mirrors, CORS, headers)
comes from the root rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ratline.api.envelope import Resource
from ratline.api.schemas.networking import HTTPMatchRequest, HTTPRoute, StringMatch
from ratline.model.snapshot import MeshSnapshot
from ratline.translate.common import CONFLICT, UNRESOLVED, Findings
from ratline.translate.policy import visible_to

ROOT_DEFAULTS = (
    "rewrite",
    "direct_response",
    "timeout",
    "retries",
    "fault",
    "mirror",
    "mirror_percent",
    "mirror_percentage",
    "cors_policy",
    "headers",
)
"""Rule fields a delegate rule takes from its root rule when it leaves them unset."""

Rule = tuple[HTTPRoute, Resource[Any], str]
"""A rule, the VirtualService it was written in, and its field path there."""


def _string_conflict(root: StringMatch | None, leaf: StringMatch | None) -> bool:
    """Whether `leaf` may match something `root` does not (Istio's stringMatchConflict)."""
    if root is None or leaf is None:
        return False
    if root.regex or leaf.regex:
        return True  # regexes cannot be compared: only one side may set one
    if root.exact:
        return bool(leaf.prefix) or leaf.exact != root.exact
    if root.prefix:
        if leaf.prefix:
            return not leaf.prefix.startswith(root.prefix)
        if leaf.exact:
            return not leaf.exact.startswith(root.prefix)
    return True


def _map_conflict(root: Mapping[str, StringMatch], leaf: Mapping[str, StringMatch]) -> bool:
    return any(_string_conflict(root.get(k), v) for k, v in leaf.items())


def has_conflict(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> bool:
    """Whether a delegate match block does not fall inside a root one (Istio's hasConflict)."""
    pairs = (
        (root.uri, leaf.uri),
        (root.scheme, leaf.scheme),
        (root.method, leaf.method),
        (root.authority, leaf.authority),
    )
    if any(_string_conflict(r, lf) for r, lf in pairs):
        return True
    if _map_conflict(root.headers, leaf.headers):
        return True
    if _map_conflict(root.without_headers, leaf.without_headers):
        return True
    if _map_conflict(root.query_params, leaf.query_params):
        return True
    if root.ignore_uri_case != leaf.ignore_uri_case:
        return True
    if root.port and leaf.port and root.port != leaf.port:
        return True
    if root.source_namespace and leaf.source_namespace != root.source_namespace:
        return True
    if any(
        k in root.source_labels and root.source_labels[k] != v
        for k, v in leaf.source_labels.items()
    ):
        return True
    return bool(root.gateways and leaf.gateways and not set(leaf.gateways) <= set(root.gateways))


def _joined(root: str | None, leaf: str | None) -> str | None:
    if not leaf:
        return root
    return f"{root}-{leaf}" if root else leaf


def merge_match(root: HTTPMatchRequest, leaf: HTTPMatchRequest) -> HTTPMatchRequest:
    """Both blocks' conditions: the delegate's, with what it leaves unset from the root."""
    return leaf.model_copy(
        update={
            "name": _joined(root.name, leaf.name),
            "uri": leaf.uri or root.uri,
            "scheme": leaf.scheme or root.scheme,
            "method": leaf.method or root.method,
            "authority": leaf.authority or root.authority,
            "headers": {**root.headers, **leaf.headers},
            "without_headers": {**root.without_headers, **leaf.without_headers},
            "query_params": {**root.query_params, **leaf.query_params},
            "port": leaf.port or root.port,
            "source_labels": {**root.source_labels, **leaf.source_labels},
            "source_namespace": leaf.source_namespace or root.source_namespace,
            "gateways": leaf.gateways or root.gateways,
            "stat_prefix": leaf.stat_prefix or root.stat_prefix,
        }
    )


def merge_matches(
    root: tuple[HTTPMatchRequest, ...], leaf: tuple[HTTPMatchRequest, ...]
) -> tuple[HTTPMatchRequest, ...] | None:
    """Every delegate block merged with each root block it fits; None on a conflict."""
    if not root:
        return leaf
    if not leaf:
        return root
    merged: list[HTTPMatchRequest] = []
    for block in leaf:
        fitting = [merge_match(r, block) for r in root if not has_conflict(r, block)]
        if not fitting:
            return None
        merged.extend(fitting)
    return tuple(merged)


def merge_rule(root: HTTPRoute, leaf: HTTPRoute) -> HTTPRoute | None:
    """A delegate rule under its root rule (None when their matches conflict)."""
    matches = merge_matches(root.match, leaf.match)
    if matches is None:
        return None
    update: dict[str, Any] = {"match": matches, "name": _joined(root.name, leaf.name)}
    for name in ROOT_DEFAULTS:
        if getattr(leaf, name) is None:
            update[name] = getattr(root, name)
    if not leaf.mirrors:
        update["mirrors"] = root.mirrors
    return leaf.model_copy(update=update)


def find_delegate(snapshot: MeshSnapshot, name: str, namespace: str) -> Resource[Any] | None:
    return next(
        (vs for vs in snapshot.virtual_services if vs.name == name and vs.namespace == namespace),
        None,
    )


def expand_rules(snapshot: MeshSnapshot, vs: Resource[Any], findings: Findings) -> list[Rule]:
    """A VirtualService's rules with every delegate rule merged in place of its root rule."""
    rules: list[Rule] = []
    for index, http in enumerate(vs.spec.http):
        path = f"spec.http[{index}]"
        if http.delegate is None:
            rules.append((http, vs, path))
            continue
        namespace = http.delegate.namespace or vs.namespace
        ref = f"{namespace}/{http.delegate.name}"
        delegate = find_delegate(snapshot, http.delegate.name, namespace)
        problem = None
        if delegate is None:
            problem = f"delegate VirtualService {ref} not found"
        elif delegate.spec.hosts:
            problem = f"VirtualService {ref} has hosts, so it cannot be a delegate"
        elif not visible_to(delegate.spec.export_to, delegate.namespace, vs.namespace):
            problem = f"delegate VirtualService {ref} is not exported to {vs.namespace}"
        if problem is not None or delegate is None:
            findings.add(vs, f"{path}.delegate", f"{problem}; the rule is left out", UNRESOLVED)
            continue
        for leaf_index, leaf in enumerate(delegate.spec.http):
            leaf_path = f"spec.http[{leaf_index}]"
            if leaf.delegate is not None:
                message = "a delegate VirtualService cannot delegate again; the rule is left out"
                findings.add(delegate, f"{leaf_path}.delegate", message, UNRESOLVED)
                continue
            merged = merge_rule(http, leaf)
            if merged is None:
                message = (
                    f"its match is not inside the match of {vs.key} {path} that delegates "
                    "to it; the rule is left out"
                )
                findings.add(delegate, f"{leaf_path}.match", message, CONFLICT)
                continue
            rules.append((merged, delegate, leaf_path))
    return rules
