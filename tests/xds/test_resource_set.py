"""Unit tests of `ResourceSet`: layering, diffs, unions, versions, encodings."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2

from ratline.xds.cache import pack
from ratline.xds.resource_set import ResourceSet, diff, union
from ratline.xds.types import VersionedResource


def cluster(name: str, timeout_s: int = 1) -> VersionedResource:
    message = cluster_pb2.Cluster(name=name)
    message.connect_timeout.seconds = timeout_s
    return pack(message)


def flat(*resources: VersionedResource) -> ResourceSet:
    return ResourceSet({r.name: r for r in resources})


def test_layered_set_reads_as_the_union_of_base_and_own() -> None:
    base = flat(cluster("a"), cluster("b"))
    layered = ResourceSet({"own": cluster("own")}, base)
    assert list(layered) == ["a", "b", "own"]
    assert len(layered) == 3 and "a" in layered and "own" in layered and "x" not in layered
    assert layered["b"] is base["b"]
    assert [r.name for r in layered.ordered()] == ["a", "b", "own"]


def test_own_name_shadowing_the_base_flattens_with_own_winning() -> None:
    base = flat(cluster("a"), cluster("b"))
    layered = ResourceSet({"a": cluster("a", 5)}, base)
    assert layered.base is None
    assert layered["a"].version == cluster("a", 5).version and "b" in layered


def test_diff_of_layered_sets_names_exactly_what_changed() -> None:
    old_base = flat(cluster("a"), cluster("b"), cluster("gone"))
    new_base = flat(cluster("a"), cluster("b", 2), cluster("new"))
    old = ResourceSet({"mine": cluster("mine")}, old_base)
    new = ResourceSet({"mine": cluster("mine", 3)}, new_base)
    changes = diff(old, new)
    assert changes.changed == {"b", "new", "mine"} and changes.removed == {"gone"}
    assert not diff(new, ResourceSet({"mine": cluster("mine", 3)}, new_base))


def test_base_diff_is_computed_once_per_pair_of_bases() -> None:
    old_base = flat(*(cluster(f"c{i}") for i in range(50)))
    new_base = flat(*(cluster(f"c{i}", 2 if i == 7 else 1) for i in range(50)))
    first = diff(
        ResourceSet({"p1": cluster("p1")}, old_base), ResourceSet({"p1": cluster("p1")}, new_base)
    )
    remembered = new_base._remembered("diff", old_base)
    assert remembered is not None and remembered.changed == {"c7"}
    second = diff(
        ResourceSet({"p2": cluster("p2")}, old_base), ResourceSet({"p2": cluster("p2")}, new_base)
    )
    assert first.changed == second.changed == {"c7"}


def test_union_keeps_what_only_the_old_set_had_and_takes_new_versions() -> None:
    old = ResourceSet({"mine": cluster("mine")}, flat(cluster("a"), cluster("old")))
    new = ResourceSet({"mine": cluster("mine", 2)}, flat(cluster("a", 2), cluster("new")))
    merged = union(old, new)
    assert sorted(merged) == ["a", "mine", "new", "old"]
    assert merged["a"].version == cluster("a", 2).version
    assert merged["mine"].version == cluster("mine", 2).version


def test_union_with_nothing_removed_is_the_new_set_itself() -> None:
    base_old = flat(cluster("a"))
    base_new = flat(cluster("a", 2), cluster("b"))
    new = ResourceSet({"mine": cluster("mine")}, base_new)
    assert union(ResourceSet({"mine": cluster("mine")}, base_old), new) is new


def test_versions_follow_content() -> None:
    base = flat(cluster("a"))
    one = ResourceSet({"m": cluster("m")}, base)
    same = ResourceSet({"m": cluster("m")}, base)
    other = ResourceSet({"m": cluster("m", 9)}, base)
    assert one.version == same.version != other.version
    assert one.same_content(same) and not one.same_content(other)
    assert flat(cluster("a"), cluster("b")).version == flat(cluster("b"), cluster("a")).version


def test_sotw_bytes_parse_to_the_whole_set_in_order() -> None:
    layered = ResourceSet({"own": cluster("own")}, flat(cluster("a"), cluster("b")))
    encoded = layered.sotw_bytes()
    parsed = discovery_pb2.DiscoveryResponse.FromString(encoded)
    assert [r for r in parsed.resources] == [r.body for r in layered.ordered()]
