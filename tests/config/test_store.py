"""The config store: directory layer, applied layer, persistence, last good config."""

from __future__ import annotations

from pathlib import Path

import pytest

from ratline.api.errors import ConfigError
from ratline.config.store import MeshDirStore

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
"""

VS_V1 = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"""

VS_BAD_WEIGHT = VS_V1.replace("subset: v1}", "subset: v1}\n      weight: 150")


def make_store(tmp_path: Path, files: dict[str, str]) -> MeshDirStore:
    mesh = tmp_path / "mesh"
    mesh.mkdir(exist_ok=True)
    for name, text in files.items():
        (mesh / name).write_text(text)
    store = MeshDirStore(mesh, mesh / ".ratline")
    store.load()
    return store


def kinds(store: MeshDirStore) -> list[str]:
    return [f"{s.resource.key}@{s.origin}" for s in store.stored()]


def test_loads_directory_and_defaults_namespace(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"svc.yaml": SERVICE})
    assert kinds(store) == ["Service default/reviews@dir"]


def test_apply_persists_and_survives_restart(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"svc.yaml": SERVICE})
    result = store.apply(VS_V1, "vs.yaml")
    assert [str(k) for k in result.created] == ["VirtualService default/reviews"]
    again = store.apply(VS_V1, "vs.yaml")
    assert [str(k) for k in again.unchanged] == ["VirtualService default/reviews"]

    restarted = MeshDirStore(store.mesh_dir, store.mesh_dir / ".ratline")
    restarted.load()
    assert kinds(restarted) == kinds(store)
    assert restarted.version == store.version


def test_apply_is_all_or_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"svc.yaml": SERVICE})
    before = store.version
    with pytest.raises(ConfigError) as err:
        store.apply(VS_V1.replace("reviews}", "ratings}") + "---\n" + VS_BAD_WEIGHT, "two.yaml")
    text = str(err.value)
    assert "two.yaml: document 2" in text
    assert "VirtualService default/reviews" in text
    assert "spec.http[0].route[0].weight" in text
    assert store.version == before
    assert kinds(store) == ["Service default/reviews@dir"]


def test_bad_file_keeps_last_good_config(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"svc.yaml": SERVICE, "vs.yaml": VS_V1})
    good = store.version
    (store.mesh_dir / "vs.yaml").write_text(VS_BAD_WEIGHT)
    errors = store.reload_dir()
    assert errors and "spec.http[0].route[0].weight" in str(errors[0])
    assert store.version == good
    assert "VirtualService default/reviews@dir" in kinds(store)
    assert store.refused
    (store.mesh_dir / "vs.yaml").write_text(VS_V1.replace("v1}", "v2}"))
    assert store.reload_dir() == []
    assert store.version != good
    assert not store.refused


def test_delete_applied_and_refuse_directory_resources(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"svc.yaml": SERVICE})
    store.apply(VS_V1, "vs.yaml")
    assert [str(k) for k in store.delete(VS_V1, "vs.yaml").deleted] == [
        "VirtualService default/reviews"
    ]
    assert not list((store.mesh_dir / ".ratline" / "applied").glob("*.yaml"))
    with pytest.raises(ConfigError) as err:
        store.delete(SERVICE, "svc.yaml")
    assert "mesh directory" in str(err.value)


def test_applied_overrides_directory_and_delete_restores_it(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"svc.yaml": SERVICE, "vs.yaml": VS_V1})
    v2 = VS_V1.replace("v1}", "v2}")
    store.apply(v2, "v2.yaml")
    (only,) = [s for s in store.stored("VirtualService")]
    assert only.origin == "applied"
    store.delete(v2, "v2.yaml")
    (only,) = [s for s in store.stored("VirtualService")]
    assert only.origin == "dir"


def test_duplicate_across_files_is_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path, {"a.yaml": SERVICE, "b.yaml": SERVICE})
    assert any("duplicate" in str(m) and "a.yaml" in str(m) for m in store.refused)
    assert kinds(store) == ["Service default/reviews@dir"]
