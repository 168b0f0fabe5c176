"""The control plane's log: leveled text or JSON lines, bad settings refused by name."""

from __future__ import annotations

import json
import logging

import pytest

from ratline.controlplane.log_format import JsonLines, configure


def test_json_lines_carry_time_level_scope_and_message() -> None:
    record = logging.LogRecord("ratline.xds", logging.WARNING, __file__, 1, "push %s", ("lds",),
                               None)
    entry = json.loads(JsonLines().format(record))
    assert entry["level"] == "warning" and entry["scope"] == "ratline.xds"
    assert entry["msg"] == "push lds" and entry["time"].endswith("+00:00")


def test_unknown_level_or_format_is_refused_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="RATLINE_LOG_LEVEL='loud'"):
        configure("loud", "text")
    with pytest.raises(ValueError, match="RATLINE_LOG_FORMAT='xml'"):
        configure("info", "xml")
