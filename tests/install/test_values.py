"""Values as Helm merges them, and values refused before anything is applied."""

from __future__ import annotations

import pytest

from ratline.install.values import DEFAULTS, ValuesError, merge, parse_set, resolve


def test_set_parses_as_helm_does() -> None:
    assert parse_set("controlplane.meshConfig.accessLogFile=/dev/stdout") == {
        "controlplane": {"meshConfig": {"accessLogFile": "/dev/stdout"}}
    }
    assert parse_set("a.b=true") == {"a": {"b": True}}
    assert parse_set("a=2") == {"a": 2}
    assert parse_set("a=007") == {"a": "007"}
    assert parse_set("a=0") == {"a": "0"}
    assert parse_set("a=null") == {"a": None}
    assert parse_set("a={x,y}") == {"a": ["x", "y"]}
    with pytest.raises(ValuesError, match=r"KEY\.PATH=VALUE"):
        parse_set("a..b=1")


def test_maps_merge_lists_replace_null_removes() -> None:
    base = {"m": {"a": 1, "b": {"c": 2}}, "l": [1, 2]}
    got = merge(base, {"m": {"b": {"d": 3}, "a": None}, "l": [9]})
    assert got == {"m": {"b": {"c": 2, "d": 3}}, "l": [9]}
    assert base == {"m": {"a": 1, "b": {"c": 2}}, "l": [1, 2]}  # not changed in place


def test_defaults_resolve_and_overrides_win() -> None:
    assert resolve([]) == DEFAULTS
    values = resolve([parse_set("controlplane.meshConfig.accessLogFile=/dev/stdout")])
    mesh = values["controlplane"]["meshConfig"]
    assert mesh == {**DEFAULTS["controlplane"]["meshConfig"], "accessLogFile": "/dev/stdout"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"nope": {}}, "unknown values key nope"),
        ({"controlplane": {"imag": {}}}, "controlplane.imag"),
        (
            {"controlplane": {"meshConfig": {"outboundTrafficPolicy": {"mode": "OPEN"}}}},
            "controlplane.meshConfig.outboundTrafficPolicy.mode: must be one of",
        ),
        ({"controlplane": {"env": {"RATLINE_X": 1}}}, "controlplane.env"),
    ],
)
def test_bad_values_name_the_key(override: dict[str, object], message: str) -> None:
    with pytest.raises(ValuesError, match=message.replace(".", r"\.")):
        resolve([override])
