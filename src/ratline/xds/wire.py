"""Conversions between the xDS discovery protos and the plain data of `protocol`."""

from __future__ import annotations

from envoy.service.discovery.v3 import discovery_pb2

from ratline.xds.protocol import DeltaRequest, DeltaResponse, SotwRequest, SotwResponse

CONTROL_PLANE_ID = "ratline"


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
