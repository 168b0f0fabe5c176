"""The store's parse reuse: an unchanged file keeps its resources (the very same objects),
and any change of a file's text is seen, even when its stat looks the same."""

from __future__ import annotations

import os
from pathlib import Path

from ratline.config import store as store_module
from ratline.config.store import MeshDirStore
from tests.config.test_store import SERVICE, VS_V1

VS_V2 = VS_V1.replace("subset: v1", "subset: v2")


def _store(tmp_path: Path) -> tuple[MeshDirStore, Path]:
    mesh = tmp_path / "mesh"
    mesh.mkdir()
    (mesh / "svc.yaml").write_text(SERVICE)
    (mesh / "vs.yaml").write_text(VS_V1)
    old = 1_000_000_000  # long ago: past the racy-stat window
    for name in ("svc.yaml", "vs.yaml"):
        os.utime(mesh / name, ns=(old, old))
    store = MeshDirStore(mesh, mesh / ".ratline")
    assert store.load() == []
    return store, mesh


def _by_kind(store: MeshDirStore) -> dict[str, object]:
    return {s.resource.kind: s.resource for s in store.stored()}


def test_an_unchanged_file_keeps_its_resources_and_an_edited_one_is_parsed(
    tmp_path: Path,
) -> None:
    store, mesh = _store(tmp_path)
    before = _by_kind(store)
    version = store.version
    (mesh / "vs.yaml").write_text(VS_V2)
    assert store.reload_dir() == []
    after = _by_kind(store)
    assert after["Service"] is before["Service"]
    assert after["VirtualService"] is not before["VirtualService"]
    assert "v2" in repr(after["VirtualService"].spec)  # type: ignore[attr-defined]
    assert store.version != version


def test_a_rewrite_that_keeps_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    store, mesh = _store(tmp_path)
    path = mesh / "vs.yaml"
    recent = path.stat().st_mtime_ns
    # Read it while its mtime is recent (within the racy window), then rewrite it in
    # place with the same size and the same mtime (a coarse file system clock).
    os.utime(path, ns=(recent, store_module.time.time_ns()))
    mtime = path.stat().st_mtime_ns
    assert store.reload_dir() == []
    with path.open("r+") as f:
        f.write(VS_V2)
    os.utime(path, ns=(mtime, mtime))
    assert len(VS_V2) == len(VS_V1)
    assert store.reload_dir() == []
    assert "v2" in repr(_by_kind(store)["VirtualService"].spec)  # type: ignore[attr-defined]


def test_a_file_touched_without_a_change_keeps_its_resources(tmp_path: Path) -> None:
    store, mesh = _store(tmp_path)
    before = _by_kind(store)
    (mesh / "svc.yaml").write_text(SERVICE)  # new mtime, same text
    assert store.reload_dir() == []
    assert _by_kind(store)["Service"] is before["Service"]
