"""The table renderer and the config-message line format."""

from __future__ import annotations

import pytest

from ratline.api.envelope import ResourceKey, Source
from ratline.api.errors import ConfigMessage, Severity
from ratline.cli.output import format_message, is_error, render_table


def test_columns_are_padded_to_the_widest_cell() -> None:
    text = render_table(("NAME", "PORT"), [("reviews", 9080), ("ratings-long", None)])
    assert text.splitlines() == [
        "NAME          PORT",
        "reviews       9080",
        "ratings-long  -",
    ]


def test_no_trailing_spaces_and_header_only_table() -> None:
    text = render_table(("A", "LONGER"), [("x", "")])
    assert all(line == line.rstrip() for line in text.splitlines())
    assert render_table(("A", "B"), []) == "A  B"


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="2 columns"):
        render_table(("A", "B"), [("only",)])


def test_message_line_has_severity_code_and_text() -> None:
    message = ConfigMessage(
        "weight must be 0..100",
        Source("vs.yaml", 2),
        ResourceKey("VirtualService", "default", "reviews"),
        field="spec.http[0].route[0].weight",
        code="IST0101",
    )
    assert format_message(message.to_json()) == (
        "Error [IST0101] vs.yaml: document 2, VirtualService default/reviews: "
        "spec.http[0].route[0].weight: weight must be 0..100"
    )
    assert is_error(message.to_json())


def test_warning_line_drops_the_text_prefix_and_code_may_be_absent() -> None:
    message = ConfigMessage("host not found", Source("vs.yaml"), severity=Severity.WARNING)
    assert format_message(message.to_json()) == "Warning vs.yaml: host not found"
    assert not is_error(message.to_json())
