"""The hand-encoded responses parse to exactly the protos the protocol describes."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.service.discovery.v3 import discovery_pb2

from ratline.xds import wire
from ratline.xds.cache import pack
from ratline.xds.protocol import DeltaResponse, SotwResponse
from ratline.xds.resource_set import ResourceSet
from ratline.xds.types import CLUSTER

A = pack(cluster_pb2.Cluster(name="a"))
B = pack(cluster_pb2.Cluster(name="b"))


def test_sotw_bytes_equal_the_built_proto() -> None:
    response = SotwResponse(CLUSTER, "v1", "3", (A, B))
    parsed = discovery_pb2.DiscoveryResponse.FromString(wire.sotw_response_bytes(response))
    assert parsed == wire.sotw_response(response)
    assert parsed.control_plane.identifier == wire.CONTROL_PLANE_ID
    assert [r.value for r in parsed.resources] == [A.body.value, B.body.value]


def test_sotw_bytes_of_a_complete_set_reuse_its_encoding() -> None:
    whole = ResourceSet({"b": B}, ResourceSet({"a": A}))
    response = SotwResponse(CLUSTER, "v1", "3", whole.ordered(), whole)
    parsed = discovery_pb2.DiscoveryResponse.FromString(wire.sotw_response_bytes(response))
    assert parsed == wire.sotw_response(SotwResponse(CLUSTER, "v1", "3", (A, B)))


def test_delta_bytes_equal_the_built_proto() -> None:
    response = DeltaResponse(CLUSTER, "sv", "4", (A, B), ("x", "y"))
    parsed = discovery_pb2.DeltaDiscoveryResponse.FromString(wire.delta_response_bytes(response))
    assert parsed == wire.delta_response(response)
    assert [(r.name, r.version) for r in parsed.resources] == [("a", A.version), ("b", B.version)]
    assert list(parsed.removed_resources) == ["x", "y"]
