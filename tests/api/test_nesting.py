"""Deeply nested YAML is refused from its text, before libyaml can overflow the C stack."""

from __future__ import annotations

from ratline.api.loader import load_text
from ratline.api.nesting import MAX_NESTING, too_deep


def test_flow_nesting_found() -> None:
    n = MAX_NESTING + 1
    assert too_deep("a: " + "[" * n + "]" * n) == 1
    assert too_deep("a: " + "[" * 50 + "]" * 50) is None


def test_block_nesting_found() -> None:
    text = "".join(" " * i + f"k{i}:\n" for i in range(MAX_NESTING + 5))
    assert too_deep(text) is not None
    assert too_deep("".join(" " * i + f"k{i}:\n" for i in range(30))) is None


def test_dash_nesting_found() -> None:
    assert too_deep("- " * (MAX_NESTING + 1) + "x") == 1


def test_quoted_brackets_do_not_count() -> None:
    assert too_deep("a: '" + "[" * 500 + "'\nb: \"{{{{" + "{" * 500 + "\"") is None


def test_ordinary_config_is_shallow() -> None:
    text = "spec:\n  http:\n  - match:\n    - uri: {prefix: /a}\n    route:\n    - destination:\n"
    assert too_deep(text) is None


def test_loader_refuses_a_document_deep_enough_to_crash_libyaml() -> None:
    n = 100_000
    result = load_text("apiVersion: v1\nkind: Service\nspec: " + "[" * n + "]" * n + "\n")
    assert not result.resources
    assert any("nests deeper than" in m.message for m in result.messages)
