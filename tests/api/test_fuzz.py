"""Property tests: whatever the input, the loader answers with messages, never crashes."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratline.api import ConfigMessage, LoadResult, Resource, ResourceKey, analyze, load_text
from ratline.api.kinds import KINDS
from tests.api.test_schemas import FULL_VS

VALID_VS: dict[str, Any] = yaml.safe_load(FULL_VS)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["1s", "100ms", "-1s", "", "*", "reviews", "v1", "HTTP", "ROUND_ROBIN"]),
)
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        [
            "apiVersion",
            "kind",
            "metadata",
            "spec",
            "name",
            "namespace",
            "hosts",
            "http",
            "route",
            "destination",
            "host",
            "weight",
            "match",
            "uri",
            "exact",
            "labels",
            "ports",
            "port",
            "number",
            "subsets",
            "selector",
            "servers",
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=25,
)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(result: LoadResult) -> None:
    assert isinstance(result, LoadResult)
    for message in result.messages:
        assert isinstance(message, ConfigMessage)
        assert str(message) and message.to_json()["text"] == str(message)
    for resource in result.resources:
        assert isinstance(resource, Resource)
        assert resource.name and resource.kind in KINDS
    analyze(result.resources)


def dump(documents: list[Any]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False)


@FUZZ
@given(st.lists(values, min_size=1, max_size=3))
def test_random_documents(documents: list[Any]) -> None:
    result = load_text(dump(documents), "fuzz.yaml")
    check(result)
    documents_with_errors = {m.source.document for m in result.errors}
    for number, document in enumerate(documents, start=1):
        if document is not None and not isinstance(document, dict):
            assert number in documents_with_errors
        if document is not None:
            loaded = [r for r in result.resources if r.source.document == number]
            assert len(loaded) == 1 or number in documents_with_errors


@FUZZ
@given(st.sampled_from(sorted(KINDS)), st.dictionaries(keys, values, max_size=6), values)
def test_random_specs_of_every_kind(kind: str, spec: dict[str, Any], metadata: Any) -> None:
    info = KINDS[kind]
    for meta in ({"name": "a"}, metadata):
        document = {
            "apiVersion": info.api_versions[0],
            "kind": kind,
            "metadata": meta,
            "spec": spec,
        }
        result = load_text(dump([document]), "fuzz.yaml")
        check(result)
        assert len(result.resources) + len(result.errors) >= 1


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    check(load_text(text, "fuzz.yaml"))


@FUZZ
@given(st.text(alphabet="-: []{}\n\t#&*!|>'\"%@`,?abc01", max_size=200))
def test_yaml_punctuation_soup(text: str) -> None:
    check(load_text(text, "fuzz.yaml"))


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*prefix, index))
    return found


VS_PATHS = paths(VALID_VS)[1:]


@st.composite
def mutated_virtual_services(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(VALID_VS)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(VS_PATHS))
        parent: Any = document
        try:
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[last] = draw(values)
            elif action == "delete":
                del parent[last]
            elif isinstance(parent[last], dict):
                parent[last][draw(keys)] = draw(values)
            elif isinstance(parent[last], list):
                parent[last].append(draw(values))
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    return document


@FUZZ
@given(mutated_virtual_services())
def test_mutated_virtual_services(document: dict[str, Any]) -> None:
    result = load_text(dump([document, VALID_VS | {"metadata": {"name": "ok"}}]), "fuzz.yaml")
    check(result)
    second = [r for r in result.resources if r.source.document == 2]
    mutated = [r for r in result.resources if r.source.document == 1]
    if not second:  # one bad document hides nothing, unless it really is the same resource
        assert mutated and mutated[0].key == ResourceKey("VirtualService", "default", "ok")
    mutated_errors = [m for m in result.errors if m.source.document == 1]
    assert len(mutated) + len(mutated_errors) >= 1
    for message in mutated_errors:
        assert message.source.file == "fuzz.yaml"
