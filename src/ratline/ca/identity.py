"""SPIFFE identities of workloads: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_TRUST_DOMAIN = "cluster.local"
CONTROL_PLANE_NAMESPACE = "istio-system"
CONTROL_PLANE_ACCOUNT = "istiod"
CONTROL_PLANE_HOST = "istiod.istio-system.svc"
"""The DNS name in the control plane's serving certificate (what proxies check)."""

_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True, order=True)
class Identity:
    """A workload identity: trust domain, namespace and service account."""

    trust_domain: str
    namespace: str
    service_account: str

    def __post_init__(self) -> None:
        for part in (self.trust_domain, self.namespace, self.service_account):
            if not _SEGMENT.match(part):
                raise ValueError(f"not a valid SPIFFE path segment: {part!r}")

    @property
    def uri(self) -> str:
        return spiffe_id(self.trust_domain, self.namespace, self.service_account)

    def __str__(self) -> str:
        return self.uri


def spiffe_id(trust_domain: str, namespace: str, service_account: str) -> str:
    """`spiffe://cluster.local/ns/default/sa/bookinfo-reviews`."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def parse_spiffe_id(uri: str) -> Identity:
    """The identity in a SPIFFE URI of Istio's form; ValueError for anything else."""
    prefix = "spiffe://"
    if not uri.startswith(prefix):
        raise ValueError(f"not a SPIFFE ID: {uri!r}")
    parts = uri[len(prefix) :].split("/")
    if len(parts) != 5 or parts[1] != "ns" or parts[3] != "sa":
        raise ValueError(f"not a SPIFFE ID of the form spiffe://TD/ns/NS/sa/SA: {uri!r}")
    return Identity(parts[0], parts[2], parts[4])
