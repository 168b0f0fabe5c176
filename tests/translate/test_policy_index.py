"""`destination_rule_for` indexes a snapshot's DestinationRules by host: each snapshot's
own rules answer, wildcard and namespace precedence kept."""

from __future__ import annotations

import dataclasses
from typing import Any

from ratline.api import load_text
from ratline.translate.policy import destination_rule_for
from tests.translate import mesh


def _rule(name: str, host: str, namespace: str = "default") -> Any:
    text = (
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {{host: '{host}'}}\n"
    )
    return load_text(text, "dr.yaml").resources[0]


def test_each_snapshot_answers_from_its_own_rules() -> None:
    base = mesh.snapshot()
    reviews = base.services["reviews.default.svc.cluster.local"]
    exact: Any = _rule("exact", "reviews")
    wildcard: Any = _rule("wild", "*.svc.cluster.local")
    first = dataclasses.replace(base, destination_rules=(wildcard, exact))
    second = dataclasses.replace(base, destination_rules=(wildcard,))
    third = dataclasses.replace(base, destination_rules=())
    assert destination_rule_for(first, reviews) is exact  # exact beats wildcard
    assert destination_rule_for(second, reviews) is wildcard
    assert destination_rule_for(third, reviews) is None
    assert destination_rule_for(first, reviews) is exact  # back to the first: re-indexed
    elsewhere: Any = _rule("other-ns", "reviews.default.svc.cluster.local", namespace="other")
    fourth = dataclasses.replace(
        base, destination_rules=(elsewhere, _rule("wild", "*.svc.cluster.local"))
    )
    assert destination_rule_for(fourth, reviews) is fourth.destination_rules[1]  # own namespace
