"""Make-before-break push stages: dependencies added first, removed last."""

from __future__ import annotations

from google.protobuf import any_pb2

from ratline.xds.staging import push_stages, same_config
from ratline.xds.types import CLUSTER, LISTENER, ROUTE, Resources, VersionedResource


def res(**types: dict[str, str]) -> Resources:
    urls = {"cds": CLUSTER, "lds": LISTENER, "rds": ROUTE}
    return {
        urls[t]: {n: VersionedResource(n, v, any_pb2.Any()) for n, v in by_name.items()}
        for t, by_name in types.items()
    }


def names(resources: Resources, type_url: str) -> dict[str, str]:
    return {n: r.version for n, r in resources.get(type_url, {}).items()}


def test_first_config_is_one_stage() -> None:
    new = res(cds={"a": "1"})
    assert push_stages(None, new) == [new]


def test_cluster_swap_adds_then_routes_then_removes() -> None:
    old = res(cds={"a": "1"}, rds={"r": "1"})
    new = res(cds={"b": "1"}, rds={"r": "2"})
    first, second, third = push_stages(old, new)
    assert names(first, CLUSTER) == {"a": "1", "b": "1"} and names(first, ROUTE) == {"r": "1"}
    assert names(second, CLUSTER) == {"a": "1", "b": "1"} and names(second, ROUTE) == {"r": "2"}
    assert same_config(third, new)


def test_route_only_change_is_one_stage() -> None:
    old = res(cds={"a": "1"}, rds={"r": "1"})
    new = res(cds={"a": "1"}, rds={"r": "2"})
    stages = push_stages(old, new)
    assert len(stages) == 1 and same_config(stages[0], new)


def test_cluster_update_warms_before_routes_change() -> None:
    old = res(cds={"a": "1"}, lds={"l": "1"})
    new = res(cds={"a": "2"}, lds={"l": "2"})
    first, second = push_stages(old, new)
    assert names(first, CLUSTER) == {"a": "2"} and names(first, LISTENER) == {"l": "1"}
    assert same_config(second, new)


def test_unchanged_config_has_no_stage() -> None:
    old = res(cds={"a": "1"})
    assert push_stages(old, res(cds={"a": "1"})) == []
