"""Property-based tests: malformed security policies get clear errors from the validator
and never crash it; policies that validate translate without crashing, and Envoy accepts
what comes out (anything Ratline cannot express becomes a finding instead)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratline.api.errors import Severity
from ratline.api.loader import load_text
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from tests.translate import mesh
from tests.translate.security_policies import snapshot_with
from tests.translate.static_config import validate, write_bootstrap

KINDS = ("AuthorizationPolicy", "RequestAuthentication")
ENVOY = Settings.from_env().envoy

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70000), st.text(max_size=12),
    st.sampled_from(["*", "/a*", "*.x", "ALLOW", "DENY", "CUSTOM", "10.0.0.0/8", "GET"]),
)
FIELDS = [
    "selector", "matchLabels", "targetRef", "targetRefs", "rules", "action", "provider",
    "from", "to", "when", "source", "operation", "principals", "notPrincipals",
    "requestPrincipals", "namespaces", "ipBlocks", "remoteIpBlocks", "hosts", "ports",
    "methods", "paths", "notPaths", "key", "values", "notValues", "name", "kind",
    "jwtRules", "issuer", "jwks", "jwksUri", "audiences", "fromHeaders", "fromParams",
    "outputClaimToHeaders", "header", "claim", "timeout", "bogus",
]
trees = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.sampled_from(FIELDS), children, max_size=4),
    ),
    max_leaves=20,
)


def document(kind: str, spec: Any) -> str:
    return (
        f"apiVersion: security.istio.io/v1\nkind: {kind}\n"
        f"metadata: {{name: p, namespace: default}}\nspec: {json.dumps(spec)}\n"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), spec=trees)
def test_validator_answers_malformed_policies_with_clear_errors(kind: str, spec: Any) -> None:
    result = load_text(document(kind, spec), "policy.yaml")
    if result.resources:
        assert not [m for m in result.messages if m.severity is Severity.ERROR]
        return
    errors = [m for m in result.messages if m.severity is Severity.ERROR]
    assert errors, "a refused policy must say why"
    for error in errors:
        assert error.message.strip()
        assert error.field is None or error.field.startswith("spec"), error
        assert "policy.yaml: document 1" in str(error)


# ---- valid policies: translation never crashes and Envoy accepts the result ---------------

values = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=8),
        st.sampled_from([
            "*", "/api/*", "*.css", "10.0.0.0/8", "::1", "300.1.1.1", "80", "0", "http",
            "cluster.local/ns/default/sa/x", "iss/sub", "*/sub", "GET", "a.b.com",
        ]),
    ),
    max_size=3,
)
keys = st.sampled_from([
    "request.headers[x-user]", "request.headers[bad header]", "source.ip", "remote.ip",
    "source.namespace", "source.principal", "request.auth.principal",
    "request.auth.audiences", "request.auth.presenter", "request.auth.claims[groups]",
    "request.auth.claims[a][b]", "destination.ip", "destination.port", "connection.sni",
    "experimental.envoy.filters.x", "unknown.key",
])
source = st.fixed_dictionaries({}, optional={
    f: values for f in (
        "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
        "namespaces", "notNamespaces", "ipBlocks", "notIpBlocks", "remoteIpBlocks",
        "notRemoteIpBlocks",
    )
})
operation = st.fixed_dictionaries({}, optional={
    f: values for f in (
        "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths",
    )
})
condition = st.fixed_dictionaries(
    {"key": keys, "values": values.filter(bool)}, optional={"notValues": values}
)
rule = st.fixed_dictionaries({}, optional={
    "from": st.lists(st.fixed_dictionaries({"source": source}), max_size=2),
    "to": st.lists(st.fixed_dictionaries({"operation": operation}), max_size=2),
    "when": st.lists(condition, max_size=3),
})
policy = st.fixed_dictionaries(
    {"rules": st.lists(rule, max_size=3)},
    optional={
        "action": st.sampled_from(["ALLOW", "DENY", "AUDIT"]),
        "selector": st.sampled_from([{"matchLabels": {"app": "reviews"}}, {}]),
    },
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(policy, min_size=1, max_size=3))
def test_valid_policies_translate_to_config_envoy_accepts(specs: list[dict[str, Any]]) -> None:
    text = "---\n".join(
        document("AuthorizationPolicy", spec).replace("name: p,", f"name: p{i},")
        for i, spec in enumerate(specs)
    )
    loaded = load_text(text, "policies.yaml")
    if not loaded.resources:
        return
    valid = "---\n".join(
        document("AuthorizationPolicy", r.spec.model_dump(by_alias=True, exclude_defaults=True))
        .replace("name: p,", f"name: {r.name},")
        for r in loaded.resources
    )
    generator = MeshGenerator(snapshot_with(valid), Settings.from_env())
    resources = generator.protos_for(mesh.node("reviews-v1-0"))
    assert resources is not None
    for message in generator.messages:
        assert message.severity is Severity.WARNING and message.field
    with tempfile.TemporaryDirectory() as tmp:
        bootstrap = write_bootstrap(Path(tmp) / "envoy.json", resources)
        result = validate(ENVOY, bootstrap)
    assert result.returncode == 0, (valid, result.stdout[-2000:])
