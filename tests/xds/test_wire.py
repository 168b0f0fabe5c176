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


def _received(version: str, nonce: str, names: list[str], **fields: object) -> wire.ReceivedSotw:
    message = discovery_pb2.DiscoveryRequest(
        version_info=version, response_nonce=nonce, resource_names=names, type_url=CLUSTER
    )
    for name, value in fields.items():
        getattr(message, name).CopyFrom(value)
    return wire.ReceivedSotw.parse(message.SerializeToString())


NAMES = [f"outbound|9080||svc-{i}.default.svc.cluster.local" for i in range(40)]


def test_names_key_is_equal_for_the_same_names_whatever_the_version_and_nonce() -> None:
    first = wire.sotw_request(_received("v1", "3", NAMES))
    second = wire.sotw_request(_received("v22", "17", NAMES))
    assert first.names_key is not None and first.names_key == second.names_key
    assert list(first.resource_names) == NAMES
    other = wire.sotw_request(_received("v1", "3", [*NAMES[:-1], "outbound|9080||x"]))
    assert other.names_key != first.names_key
    fewer = wire.sotw_request(_received("v1", "3", NAMES[:-1]))
    assert fewer.names_key != first.names_key


def test_names_key_is_absent_when_the_layout_is_not_the_plain_one() -> None:
    from envoy.config.core.v3 import base_pb2

    with_node = wire.sotw_request(_received("", "", NAMES, node=base_pb2.Node(id="n")))
    assert with_node.names_key is None and list(with_node.resource_names) == NAMES
    few = wire.sotw_request(_received("v1", "3", NAMES[:3]))
    assert few.names_key is None and few.resource_names == tuple(NAMES[:3])
    message = discovery_pb2.DiscoveryRequest(response_nonce="3", type_url=CLUSTER)
    reordered = message.SerializeToString() + b"".join(
        discovery_pb2.DiscoveryRequest(resource_names=[n]).SerializeToString() for n in NAMES
    )
    parsed = wire.sotw_request(wire.ReceivedSotw.parse(reordered))
    assert parsed.names_key is None and list(parsed.resource_names) == NAMES
