"""`ResourceSet`: one type's resources for one proxy, layered on a set proxies share.

A proxy's clusters are mostly the mesh's outbound clusters, which every proxy of the same
scope shares, plus a few of its own (inbound). Copying or comparing the shared part per
proxy makes a push cost O(mesh) per proxy. A `ResourceSet` is instead a small `own` map
over an optional shared `base` set, and the expensive operations are computed once per
pair of shared sets and remembered on the newer one:

- `diff(old, new)`: which names changed or went away (per proxy: the shared part's diff,
  computed once, plus its own few names);
- `union(old, new)`: the make-before-break stage holding both (per pair of bases, once);
- `version`: a content hash (a base hashes its names once; a layered set hashes the
  base's version with its own names);
- the SotW wire bytes of the whole set (`sotw_bytes`, the base part joined once).

Sets are immutable. A `base` is always flat, and `own` never shadows a base name (such a
set is flattened), so the layered set is the disjoint union of the two.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ratline.xds.cache import set_version
from ratline.xds.types import VersionedResource

_EMPTY: Mapping[str, VersionedResource] = {}
_MEMO_PRUNE_AT = 32
"""Memo entries of a set past which those of sets no longer alive are dropped."""


@dataclass(frozen=True)
class Diff:
    """Names whose resource is new or changed, and names that went away."""

    changed: frozenset[str]
    removed: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.changed or self.removed)


NO_DIFF = Diff(frozenset(), frozenset())


class ResourceSet(Mapping[str, VersionedResource]):
    """An immutable name → resource map of one type, optionally over a shared base."""

    __slots__ = ("__weakref__", "_base", "_cache", "_memo", "_own")

    def __init__(
        self, own: Mapping[str, VersionedResource] = _EMPTY, base: ResourceSet | None = None
    ) -> None:
        mine: dict[str, VersionedResource] = dict(own)
        under: ResourceSet | None = base
        if under is not None and under.base is not None:
            mine = {**under.own_part(), **mine}
            under = under.base
        if under is not None and not under:
            under = None
        if under is not None and any(name in under for name in mine):
            mine = {**under.own_part(), **mine}
            under = None
        self._own = mine
        self._base = under
        self._memo: dict[tuple[str, int], tuple[weakref.ref[ResourceSet], Any]] = {}
        self._cache: dict[str, Any] = {}

    def own_part(self) -> Mapping[str, VersionedResource]:
        """The resources this set adds to its base (all of them for a flat set)."""
        return self._own

    @classmethod
    def of(cls, resources: Mapping[str, VersionedResource]) -> ResourceSet:
        """`resources` itself if it is a ResourceSet, else a flat set of it."""
        return resources if isinstance(resources, ResourceSet) else cls(resources)

    @property
    def base(self) -> ResourceSet | None:
        return self._base

    # ---- Mapping ------------------------------------------------------------------------

    def __getitem__(self, name: str) -> VersionedResource:
        found = self._own.get(name)
        if found is not None:
            return found
        if self._base is not None:
            return self._base._own[name]
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:  # no KeyError raised and caught
        found = self._own.get(name)
        if found is not None:
            return found
        if self._base is not None:
            return self._base._own.get(name, default)
        return default

    def __contains__(self, name: object) -> bool:
        return name in self._own or (self._base is not None and name in self._base._own)

    def __iter__(self) -> Iterator[str]:
        if self._base is not None:
            yield from self._base._own
        yield from self._own

    def __len__(self) -> int:
        return len(self._own) + (len(self._base._own) if self._base is not None else 0)

    def __repr__(self) -> str:
        return f"ResourceSet({len(self)} resources, version {self.version})"

    # ---- derived, computed once ---------------------------------------------------------

    @property
    def version(self) -> str:
        """A hash of the content (same layering and content → same version)."""
        found = self._cache.get("version")
        if found is None:
            own = {name: r.version for name, r in self._own.items()}
            if self._base is not None:
                own["\0base"] = self._base.version
            found = self._cache["version"] = set_version(own)
        return str(found)

    def ordered(self) -> tuple[VersionedResource, ...]:
        """Every resource, base first, each part in the order it was built.

        Kept for a base (shared); a layered set's is made when asked, since one per
        proxy would hold a copy of the shared part for each.
        """
        if self._base is not None:
            return self._base.ordered() + tuple(self._own.values())
        found = self._cache.get("ordered")
        if found is None:
            found = self._cache["ordered"] = tuple(self._own.values())
        return found  # type: ignore[no-any-return]

    def sotw_bytes(self) -> bytes:
        """The `resources` fields of a DiscoveryResponse carrying the whole set (kept for
        a base; a layered set joins the base's with its own when asked)."""
        if self._base is not None:
            return self._base.sotw_bytes() + b"".join(r.sotw_entry for r in self._own.values())
        found = self._cache.get("sotw")
        if found is None:
            found = self._cache["sotw"] = b"".join(r.sotw_entry for r in self._own.values())
        return found  # type: ignore[no-any-return]

    def same_content(self, other: ResourceSet) -> bool:
        """Whether both hold the same names at the same versions (O(own resources) when
        the bases' versions are known; a "no" may be wrong only for equal content layered
        differently, which costs a redundant stage, never a missed change)."""
        if self is other:
            return True
        mine, theirs = self._base, other._base
        if mine is not theirs:
            if mine is None or theirs is None:
                return len(self) == len(other) and self.version == other.version
            if len(mine) != len(theirs) or mine.version != theirs.version:
                return False  # (or the same content split otherwise: a harmless "no")
        return _same_versions(self._own, other._own)

    # ---- memo of pairwise operations with an older set ----------------------------------

    def _remembered(self, op: str, older: ResourceSet) -> Any:
        hit = self._memo.get((op, id(older)))
        if hit is not None and hit[0]() is older:
            return hit[1]
        return None

    def _remember(self, op: str, older: ResourceSet, value: Any) -> Any:
        if len(self._memo) >= _MEMO_PRUNE_AT:
            self._memo = {k: v for k, v in self._memo.items() if v[0]() is not None}
        self._memo[(op, id(older))] = (weakref.ref(older), value)
        return value


def _same_versions(a: Mapping[str, VersionedResource], b: Mapping[str, VersionedResource]) -> bool:
    if len(a) != len(b):
        return False
    for name, resource in a.items():
        other = b.get(name)
        if other is None or (other is not resource and other.version != resource.version):
            return False
    return True


def _flat_diff(old: Mapping[str, VersionedResource], new: Mapping[str, VersionedResource]) -> Diff:
    changed = frozenset(
        name
        for name, resource in new.items()
        if (before := old.get(name)) is None
        or (before is not resource and before.version != resource.version)
    )
    removed = frozenset(name for name in old if name not in new)
    return Diff(changed, removed)


def _base_diff(old: ResourceSet | None, new: ResourceSet | None) -> Diff:
    if old is new:
        return NO_DIFF
    if old is None or new is None:
        present = new if new is not None else old
        assert present is not None
        names = frozenset(present._own)
        return Diff(names, frozenset()) if new is not None else Diff(frozenset(), names)
    found = new._remembered("diff", old)
    if found is None:
        found = new._remember("diff", old, _flat_diff(old._own, new._own))
    return found  # type: ignore[no-any-return]


def diff(old: ResourceSet | None, new: ResourceSet) -> Diff:
    """What changed from `old` to `new`: O(own names) when their bases were diffed before."""
    if old is None:
        return Diff(frozenset(new), frozenset())
    if old is new:
        return NO_DIFF
    if old._base is None and new._base is None:
        return _flat_diff(old._own, new._own)
    base = _base_diff(old._base, new._base)
    candidates = set(base.changed) | base.removed | old._own.keys() | new._own.keys()
    changed = set()
    removed = set()
    for name in candidates:
        now = new.get(name)
        before = old.get(name)
        if now is None:
            if before is not None:
                removed.add(name)
        elif before is None or (before is not now and before.version != now.version):
            changed.add(name)
    return Diff(frozenset(changed), frozenset(removed))


def union(old: ResourceSet, new: ResourceSet) -> ResourceSet:
    """`new` plus what only `old` has (new wins): a stage that removes nothing."""
    if old is new:
        return new
    if old._base is None and new._base is None:
        if all(name in new for name in old._own):
            return new
        return ResourceSet({**old._own, **new._own})
    base = new._base
    if old._base is not None and old._base is not new._base:
        base = _base_union(old._base, new._base)
    kept = {name: r for name, r in old._own.items() if name not in new}
    if not kept and base is new._base:
        return new
    return ResourceSet({**kept, **new._own}, base)


def _base_union(old: ResourceSet, new: ResourceSet | None) -> ResourceSet:
    if new is None:
        return old
    found = new._remembered("union", old)
    if found is None:
        if all(name in new._own for name in old._own):
            merged = new
        else:
            merged = ResourceSet({**old._own, **new._own})
        found = new._remember("union", old, merged)
    return found  # type: ignore[no-any-return]
