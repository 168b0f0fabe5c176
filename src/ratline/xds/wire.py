"""Conversions between the xDS discovery protos and the plain data of `protocol`.

Requests are parsed into protos by gRPC and turned into plain data here. Responses are
encoded to bytes directly: each resource's field is encoded once (`VersionedResource.
sotw_entry` / `delta_entry`) and a whole shared set once (`ResourceSet.sotw_bytes`), so
a response to one more proxy costs a join of bytes, not a protobuf build.
"""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from ratline.xds.protocol import DeltaRequest, DeltaResponse, SotwRequest, SotwResponse
from ratline.xds.types import length_delimited

CONTROL_PLANE_ID = "ratline"
_SOTW_CONTROL_PLANE = length_delimited(6, length_delimited(1, CONTROL_PLANE_ID.encode()))
_DELTA_CONTROL_PLANE = length_delimited(7, length_delimited(1, CONTROL_PLANE_ID.encode()))


def _error_detail(
    request: discovery_pb2.DiscoveryRequest | discovery_pb2.DeltaDiscoveryRequest,
) -> str | None:
    if not request.HasField("error_detail"):
        return None
    detail = request.error_detail
    return detail.message or f"rejected (code {detail.code})"


def sotw_request(request: discovery_pb2.DiscoveryRequest) -> SotwRequest:
    return SotwRequest(
        type_url=request.type_url,
        version_info=request.version_info,
        response_nonce=request.response_nonce,
        resource_names=tuple(request.resource_names),
        error_detail=_error_detail(request),
    )


def sotw_response(response: SotwResponse) -> discovery_pb2.DiscoveryResponse:
    message = discovery_pb2.DiscoveryResponse(
        version_info=response.version,
        type_url=response.type_url,
        nonce=response.nonce,
        resources=[r.body for r in response.resources],
    )
    message.control_plane.identifier = CONTROL_PLANE_ID
    return message


def delta_request(request: discovery_pb2.DeltaDiscoveryRequest) -> DeltaRequest:
    return DeltaRequest(
        type_url=request.type_url,
        subscribe=tuple(request.resource_names_subscribe),
        unsubscribe=tuple(request.resource_names_unsubscribe),
        initial_resource_versions=dict(request.initial_resource_versions),
        response_nonce=request.response_nonce,
        error_detail=_error_detail(request),
    )


def delta_response(response: DeltaResponse) -> discovery_pb2.DeltaDiscoveryResponse:
    message = discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=response.system_version,
        type_url=response.type_url,
        nonce=response.nonce,
        removed_resources=list(response.removed),
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=r.body)
            for r in response.resources
        ],
    )
    message.control_plane.identifier = CONTROL_PLANE_ID
    return message


def sotw_response_bytes(response: SotwResponse) -> bytes:
    """The serialized DiscoveryResponse (parses to what `sotw_response` builds)."""
    if response.complete is not None:
        body = response.complete.sotw_bytes()
    else:
        body = b"".join(r.sotw_entry for r in response.resources)
    return b"".join(
        (
            length_delimited(1, response.version.encode()),
            body,
            length_delimited(4, response.type_url.encode()),
            length_delimited(5, response.nonce.encode()),
            _SOTW_CONTROL_PLANE,
        )
    )


def delta_response_bytes(response: DeltaResponse) -> bytes:
    """The serialized DeltaDiscoveryResponse (parses to what `delta_response` builds)."""
    return b"".join(
        (
            length_delimited(1, response.system_version.encode()),
            *(r.delta_entry for r in response.resources),
            length_delimited(4, response.type_url.encode()),
            length_delimited(5, response.nonce.encode()),
            *(length_delimited(6, name.encode()) for name in response.removed),
            _DELTA_CONTROL_PLANE,
        )
    )
