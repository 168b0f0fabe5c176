"""`WatchState`: list, events, relist diffs, 410 (sans IO)."""

from __future__ import annotations

from typing import Any

import pytest

from ratline.kube.watch import Change, Expired, WatchFailed, WatchState


def obj(name: str, value: str, rv: str, namespace: str = "ns") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
        "data": {"v": value},
    }


def state() -> WatchState[str]:
    return WatchState(lambda o: o["data"]["v"])


def test_relist_reports_additions_changes_and_deletions_and_nothing_else() -> None:
    s = state()
    first = s.relisted([obj("a", "1", "5"), obj("b", "1", "6")], "10")
    assert {c.key for c in first} == {("ns", "a"), ("ns", "b")}
    assert s.resource_version == "10" and s.listed
    second = s.relisted([obj("a", "2", "11"), obj("c", "1", "12"), obj("b", "1", "6")], "12")
    assert second == [Change(("ns", "a"), "1", "2"), Change(("ns", "c"), None, "1")]
    third = s.relisted([obj("a", "2", "11")], "13")
    assert set(third) == {Change(("ns", "b"), "1", None), Change(("ns", "c"), "1", None)}


def test_events_move_the_resource_version_and_skip_what_changes_nothing() -> None:
    s = state()
    s.relisted([obj("a", "1", "5")], "5")
    assert s.event({"type": "MODIFIED", "object": obj("a", "1", "6")}) is None  # rv only
    assert s.resource_version == "6"
    assert s.event({"type": "ADDED", "object": obj("b", "1", "7")}) == Change(
        ("ns", "b"), None, "1"
    )
    assert s.event({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}) is None
    assert s.resource_version == "9"
    assert s.event({"type": "DELETED", "object": obj("a", "1", "10")}) == Change(
        ("ns", "a"), "1", None
    )
    assert s.event({"type": "DELETED", "object": obj("zz", "1", "11")}) is None
    assert s.watch_query(300) == {
        "watch": "1",
        "resourceVersion": "11",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "300",
    }


def test_a_410_error_event_asks_for_a_relist_other_errors_for_a_retry() -> None:
    s = state()
    s.relisted([], "5")
    with pytest.raises(Expired):
        s.event({"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}})
    assert not s.listed
    with pytest.raises(WatchFailed, match="500"):
        s.event({"type": "ERROR", "object": {"code": 500, "message": "boom"}})
