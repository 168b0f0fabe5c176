"""Istio's peer metadata: who a proxy's workload is, as its peers see it.

A client sidecar sends its metadata on each request (`x-envoy-peer-metadata`, a base64
`google.protobuf.Struct`, with `x-envoy-peer-metadata-id` the node id), and the server
sidecar on each response; each side keeps the peer's and strips the header. The fields
are Istio's node metadata names (`NAME`, `NAMESPACE`, `WORKLOAD_NAME`, `LABELS`, ...).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from ratline.observability.istio_metrics import DEFAULT_CLUSTER_ID, UNKNOWN

CANONICAL_NAME_LABELS = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
CANONICAL_REVISION_LABELS = (
    "service.istio.io/canonical-revision",
    "app.kubernetes.io/version",
    "version",
)


def canonical_service(labels: Mapping[str, str], workload: str) -> str:
    """Istio's canonical service: its label, else app.kubernetes.io/name, app, workload."""
    for key in CANONICAL_NAME_LABELS:
        if labels.get(key):
            return labels[key]
    return workload or UNKNOWN


TELEMETRY_LABELS = frozenset({"app", "version", *CANONICAL_NAME_LABELS,
                              *CANONICAL_REVISION_LABELS})


@dataclass(frozen=True)
class PeerMetadata:
    """One proxy's workload identity (Istio's node metadata subset that telemetry reads)."""

    name: str
    """The instance (pod) name."""
    namespace: str
    workload: str
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    cluster_id: str = DEFAULT_CLUSTER_ID
    mesh_id: str = "cluster.local"

    @property
    def app(self) -> str:
        return self.labels.get("app") or UNKNOWN

    @property
    def version(self) -> str:
        return self.labels.get("version") or UNKNOWN

    @property
    def canonical_service(self) -> str:
        return canonical_service(self.labels, self.workload)

    @property
    def canonical_revision(self) -> str:
        for key in CANONICAL_REVISION_LABELS:
            if self.labels.get(key):
                return self.labels[key]
        return "latest"

    def principal(self, trust_domain: str) -> str:
        return f"spiffe://{trust_domain}/ns/{self.namespace}/sa/{self.service_account}"

    def node_metadata(self) -> dict[str, object]:
        """As Istio's node metadata (JSON-able): for the bootstrap and the header."""
        return {
            "NAME": self.name,
            "NAMESPACE": self.namespace,
            "WORKLOAD_NAME": self.workload,
            "LABELS": dict(self.labels),
            "SERVICE_ACCOUNT": self.service_account,
            "CLUSTER_ID": self.cluster_id,
            "MESH_ID": self.mesh_id,
        }

    def header_value(self) -> str:
        """`x-envoy-peer-metadata`: the node metadata as a base64 protobuf Struct, with
        the fields and labels telemetry reads (the pod is in `x-envoy-peer-metadata-id`).
        Each proxy records its peer's header as one stat tag, so shorter is cheaper."""
        struct = struct_pb2.Struct()
        struct.update({
            "NAMESPACE": self.namespace,
            "WORKLOAD_NAME": self.workload,
            "LABELS": {k: v for k, v in self.labels.items() if k in TELEMETRY_LABELS},
            "CLUSTER_ID": self.cluster_id,
        })
        return base64.b64encode(struct.SerializeToString(deterministic=True)).decode()

    @classmethod
    def from_node_metadata(cls, data: Mapping[str, object]) -> PeerMetadata:
        labels = data.get("LABELS")
        return cls(
            name=str(data.get("NAME") or ""),
            namespace=str(data.get("NAMESPACE") or ""),
            workload=str(data.get("WORKLOAD_NAME") or ""),
            labels={str(k): str(v) for k, v in labels.items()}
            if isinstance(labels, Mapping)
            else {},
            service_account=str(data.get("SERVICE_ACCOUNT") or "default"),
            cluster_id=str(data.get("CLUSTER_ID") or DEFAULT_CLUSTER_ID),
            mesh_id=str(data.get("MESH_ID") or "cluster.local"),
        )


@lru_cache(maxsize=4096)
def decode_header(value: str) -> PeerMetadata | None:
    """The peer of an `x-envoy-peer-metadata` value; None for empty or malformed ones."""
    if not value or value == "-":
        return None
    try:
        raw = base64.b64decode(value, validate=True)
        struct = struct_pb2.Struct()
        struct.ParseFromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        return None
    data: dict[str, object] = {}
    for key, item in struct.fields.items():
        kind = item.WhichOneof("kind")
        if kind == "string_value":
            data[key] = item.string_value
        elif kind == "struct_value":
            data[key] = {k: v.string_value for k, v in item.struct_value.fields.items()}
    peer = PeerMetadata.from_node_metadata(data)
    return peer if peer.namespace else None
