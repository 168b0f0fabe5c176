"""The build-time change that lets istiod start without Kubernetes, and the edits' markers."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_components_pb2
from google.protobuf import wrappers_pb2

from bench import istiod_build, istiomesh

SOURCE = (
    "\tif !workloadEntryController {\n"
    + istiod_build.CRASHING_LINE
    + "\t\ts.inputs.ServiceEntries = store.KrtCollection(gvk.ServiceEntry)\n\t}\n"
)


def _tree(tmp_path: Path, text: str) -> Path:
    path = tmp_path / istiod_build.PATCHED_FILE
    path.parent.mkdir(parents=True)
    path.write_text(text)
    return path


def test_patch_guards_the_crashing_line_once(tmp_path: Path) -> None:
    path = _tree(tmp_path, SOURCE)
    istiod_build.patch_source(tmp_path)
    patched = path.read_text()
    assert "if multiclusterController != nil {" in patched
    assert "krt.NewStaticCollection[*v1.Namespace](" in patched
    assert "s.inputs.ServiceEntries" in patched
    istiod_build.patch_source(tmp_path)  # a second build on the same copy changes nothing
    assert path.read_text() == patched


def test_patch_refuses_a_source_it_does_not_know(tmp_path: Path) -> None:
    _tree(tmp_path, SOURCE.replace(istiod_build.CRASHING_LINE, ""))
    with pytest.raises(istiod_build.BuildError, match="expected exactly one line"):
        istiod_build.patch_source(tmp_path)


SHAPE = istiomesh.MeshShape(20, 100, 4)


def test_markers_are_found_in_the_resources_that_carry_each_change() -> None:
    vs = istiomesh.virtualservice_edit(SHAPE, 0)
    weighted = route_components_pb2.WeightedCluster(clusters=[
        route_components_pb2.WeightedCluster.ClusterWeight(
            name=istiomesh.cluster_name(istiomesh.host(1), "v1"),
            weight=wrappers_pb2.UInt32Value(value=100 - vs.detail["weight"])),
        route_components_pb2.WeightedCluster.ClusterWeight(
            name=vs.detail["cluster"], weight=wrappers_pb2.UInt32Value(value=vs.detail["weight"])),
    ])
    assert vs.marker in weighted.SerializeToString()
    before = weighted.clusters[1]
    before.weight.value = 10
    assert vs.marker not in weighted.SerializeToString()

    ep = istiomesh.endpoint_edit(SHAPE, 0)
    moved = address_pb2.SocketAddress(address=ep.detail["address"], port_value=8080)
    assert ep.marker in moved.SerializeToString()
    longer = address_pb2.SocketAddress(address=ep.detail["address"] + "0", port_value=8080)
    assert ep.marker not in longer.SerializeToString()


def test_endpoint_edit_changes_one_inline_unrouted_service() -> None:
    edit = istiomesh.endpoint_edit(SHAPE, 2)
    index = SHAPE.endpoint_service
    assert SHAPE.virtual_services <= index < SHAPE.selector_from
    assert edit.path == f"se-{index:05d}.yaml"
    assert edit.detail["address"] in edit.text
    assert istiomesh.endpoint_address(index, 0) not in edit.text
    assert istiomesh.endpoint_address(index, 1) in edit.text
