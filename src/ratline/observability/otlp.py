"""OTLP traces: spans from an `ExportTraceServiceRequest` (pure), and the gRPC receiver.

The receiver is a generic gRPC handler for `opentelemetry.proto.collector.trace.v1.
TraceService/Export`, to add to a gRPC server (the control plane serves it on its xDS
port, which every proxy already reaches through its bootstrap cluster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from ratline.observability.spans import Span

log = logging.getLogger("ratline.observability")

EXPORT_METHOD = "Export"
SERVICE_NAME = "opentelemetry.proto.collector.trace.v1.TraceService"

_KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in trace_pb2.Span.SpanKind.items()}
_STATUS = {
    value: name.removeprefix("STATUS_CODE_") for name, value in trace_pb2.Status.StatusCode.items()
}


def _value(any_value: object) -> str:
    kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
    return "" if kind is None else str(getattr(any_value, kind))


def _scope_groups(resource_spans: trace_pb2.ResourceSpans) -> Any:
    """`scope_spans` (field 2); the protos shipped here still call it
    `instrumentation_library_spans`, with the same wire layout."""
    fields = resource_spans.DESCRIPTOR.fields_by_name
    name = "scope_spans" if "scope_spans" in fields else "instrumentation_library_spans"
    return getattr(resource_spans, name)


def spans_of(request: trace_service_pb2.ExportTraceServiceRequest) -> Iterator[Span]:
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        service = resource.get("service.name", "unknown")
        for scope_spans in _scope_groups(resource_spans):
            for span in scope_spans.spans:
                yield Span(
                    trace_id=span.trace_id.hex(),
                    span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    name=span.name,
                    service=service,
                    kind=_KINDS.get(span.kind, "UNSPECIFIED"),
                    start_ns=span.start_time_unix_nano,
                    end_ns=span.end_time_unix_nano,
                    status=_STATUS.get(span.status.code, "UNSET"),
                    attributes=tuple(sorted((a.key, _value(a.value)) for a in span.attributes)),
                )


def trace_service_handler(receive: Callable[[list[Span]], None]) -> grpc.GenericRpcHandler:
    """A gRPC handler that hands every exported batch of spans to `receive`."""

    async def export(
        request: trace_service_pb2.ExportTraceServiceRequest, _context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        try:
            receive(list(spans_of(request)))
        except Exception:
            log.exception("storing spans failed")
        return trace_service_pb2.ExportTraceServiceResponse()

    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            EXPORT_METHOD: grpc.unary_unary_rpc_method_handler(
                export,
                request_deserializer=trace_service_pb2.ExportTraceServiceRequest.FromString,
                response_serializer=trace_service_pb2.ExportTraceServiceResponse.SerializeToString,
            )
        },
    )
