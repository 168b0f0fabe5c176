"""The config that applies to a service or a workload, with its findings (pure).

Chosen as translation chooses it (the same functions): VirtualServices whose hosts cover
the service or that route to it, the DestinationRule in force, and for the workloads
behind it the PeerAuthentications of each level, the AuthorizationPolicies and
RequestAuthentications that govern them and the Sidecar that scopes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ratline.api.envelope import Resource
from ratline.api.errors import ConfigMessage
from ratline.api.hosts import fqdn, host_matches
from ratline.model.snapshot import MeshSnapshot, Service
from ratline.registry.instances import WorkloadInstance
from ratline.translate.common import Findings
from ratline.translate.policy import destination_rule_for
from ratline.translate.security_targets import applicable
from ratline.translate.sidecar_scope import SidecarIndex, destination_hosts
from ratline.translate.tls import peer_authentication_levels

POLICY_KINDS = ("AuthorizationPolicy", "RequestAuthentication")


def _entry(resource: Resource[Any], why: str, findings: Sequence[ConfigMessage]) -> dict[str, Any]:
    key = str(resource.key)
    return {
        "kind": resource.kind,
        "namespace": resource.namespace,
        "name": resource.name,
        "file": resource.source.file,
        "document": resource.source.document,
        "why": why,
        "findings": [m.to_json() for m in findings if m.resource and str(m.resource) == key],
    }


def _vs_why(vs: Resource[Any], hostname: str) -> str | None:
    gateways = list(vs.spec.gateways or ())
    in_mesh = not gateways or "mesh" in gateways
    if in_mesh and any(host_matches(fqdn(h, vs.namespace), hostname) for h in vs.spec.hosts):
        return "routes requests for this service"
    if hostname in set(destination_hosts(vs)):
        return "routes to this service"
    return None


def for_service(
    snapshot: MeshSnapshot, service: Service, instances: Iterable[WorkloadInstance],
    findings: Sequence[ConfigMessage],
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for vs in sorted(snapshot.virtual_services, key=lambda r: (r.namespace, r.name)):
        why = _vs_why(vs, service.hostname)
        if why:
            found.append(_entry(vs, why, findings))
    rule = destination_rule_for(snapshot, service)
    if rule is not None:
        found.append(_entry(rule, "traffic policy and subsets in force", findings))
    seen = {(e["kind"], e["namespace"], e["name"]) for e in found}
    for inst in instances:
        for entry in for_workload(snapshot, inst, findings):
            if (entry["kind"], entry["namespace"], entry["name"]) not in seen:
                seen.add((entry["kind"], entry["namespace"], entry["name"]))
                found.append(entry)
    return found


def for_workload(
    snapshot: MeshSnapshot, instance: WorkloadInstance, findings: Sequence[ConfigMessage]
) -> list[dict[str, Any]]:
    """The policies and Sidecar governing one instance (all instances of a workload share
    labels, so one stands for its workload)."""
    found = []
    levels = peer_authentication_levels(snapshot, instance.namespace, instance.labels)
    for level, pa in zip(("mesh-wide", "namespace-wide", "workload"), levels, strict=True):
        if pa is not None:
            found.append(_entry(pa, f"mTLS mode ({level})", findings))
    for kind in POLICY_KINDS:
        for policy in applicable(snapshot, kind, instance, Findings()):
            found.append(_entry(policy, "governs requests to this workload", findings))
    sidecar = SidecarIndex(snapshot).sidecar_for(instance)
    if sidecar is not None:
        found.append(_entry(sidecar, "scopes this workload's proxy", findings))
    return found
