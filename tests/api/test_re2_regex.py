"""Regexes Envoy's RE2 would refuse are refused at validation, before any proxy NACKs."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ratline.api.schemas.virtual_service import HTTPRewrite, StringMatch


@pytest.mark.parametrize(
    ("regex", "reason"),
    [
        ("([a-z", "unterminated character set"),
        ("(?=api)", "lookahead"),
        ("(?<!x)y", "negative lookbehind"),
        (r"(a)\1", "backreferences"),
        ("a" * 5000, "longer than"),
    ],
)
def test_regex_refused(regex: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        StringMatch.model_validate({"regex": regex})


def test_rewrite_regex_refused() -> None:
    with pytest.raises(ValidationError, match="invalid regex"):
        HTTPRewrite.model_validate({"uriRegexRewrite": {"match": "(", "rewrite": "/"}})


@pytest.mark.parametrize("regex", ["^/api/v[0-9]+$", r"\\1", "(?i)Hello", ".*"])
def test_regex_accepted(regex: str) -> None:
    assert StringMatch.model_validate({"regex": regex}).regex == regex
