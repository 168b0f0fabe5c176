"""Conversions between the xDS discovery protos and the plain data of `protocol`.

Requests are parsed into protos by gRPC and turned into plain data here. Responses are
encoded to bytes directly: each resource's field is encoded once (`VersionedResource.
sotw_entry` / `delta_entry`) and a whole shared set once (`ResourceSet.sotw_bytes`), so
a response to one more proxy costs a join of bytes, not a protobuf build.
"""

from __future__ import annotations

from dataclasses import dataclass

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


NAMES_KEY_MIN = 16
"""Requests naming at least this many resources get a `names_key`."""


@dataclass(frozen=True, slots=True)
class ReceivedSotw:
    """A DiscoveryRequest as received: parsed, and its bytes (for `names_key`)."""

    message: discovery_pb2.DiscoveryRequest
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> ReceivedSotw:
        """The gRPC request deserializer of state-of-the-world streams."""
        return cls(discovery_pb2.DiscoveryRequest.FromString(raw), raw)


def sotw_request(
    request: discovery_pb2.DiscoveryRequest | ReceivedSotw,
) -> SotwRequest:
    raw = None
    if isinstance(request, ReceivedSotw):
        request, raw = request.message, request.raw
    names = request.resource_names
    key = _names_key(request, raw) if raw is not None and len(names) >= NAMES_KEY_MIN else None
    return SotwRequest(
        type_url=request.type_url,
        version_info=request.version_info,
        response_nonce=request.response_nonce,
        resource_names=names if key is not None else tuple(names),
        error_detail=_error_detail(request),
        names_key=key,
    )


def _names_key(request: discovery_pb2.DiscoveryRequest, raw: bytes) -> memoryview | None:
    """The bytes of the request's `resource_names`, as a view into `raw`, or None.

    Envoy repeats every name of its EDS subscription in each ACK (thousands in a large
    mesh); turning them into strings and a set per ACK was most of the cost of an ACK.
    When the bytes are laid out in field order (version_info, the names, type_url,
    nonce), the names are one contiguous run, and comparing it with the last one is a
    memcmp. Any other layout (a node, an error, reordered fields) gives None: read the
    names.
    """
    if request.HasField("node") or request.HasField("error_detail"):
        return None
    version = request.version_info.encode()
    head = _short_field(1, version) if version else b""
    tail = _short_field(4, request.type_url.encode())
    if request.response_nonce:
        tail += _short_field(5, request.response_nonce.encode())
    start, end = len(head), len(raw) - len(tail)
    if end <= start or raw[start] != 0x1A or not raw.startswith(head) or not raw.endswith(tail):
        return None
    return memoryview(raw)[start:end]


def _short_field(field_number: int, payload: bytes) -> bytes:
    if len(payload) < 0x80:  # one-byte length: the usual case, without the varint loop
        return bytes((field_number << 3 | 2, len(payload))) + payload
    return length_delimited(field_number, payload)


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
