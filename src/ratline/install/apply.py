"""Applying a rendered install to a cluster (`ratline install`), and waiting for it.

Each object goes in by server-side apply (field manager `ratline-install`, conflicts
forced, as `kubectl apply --server-side --force-conflicts`), so running the install
again with other values updates in place and leaves alone what others own: the
webhooks' `caBundle` (the control plane's) and every Istio resource. The namespace
comes first, then the CRDs, which are waited for until the API server serves their
kinds (a custom resource created right after `Established` can still get 404), then
the rest in the order rendered. `wait_available` waits, bounded, for Deployments to
have every replica available (a cluster whose nodes run the pods).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ratline.kube.connection import APPLY_PATCH, KubeApiError, KubeConnection
from ratline.kube.resources import (
    CONFIG_MAP,
    CRD,
    MUTATING_WEBHOOK,
    NAMESPACE,
    SERVICE_ACCOUNT,
    VALIDATING_WEBHOOK,
    ResourceType,
)

FIELD_MANAGER = "ratline-install"
POLL_S = 0.2

_RBAC = "rbac.authorization.k8s.io"
TYPES: dict[tuple[str, str], ResourceType] = {
    (t.api_version, t.kind): t
    for t in (
        NAMESPACE,
        CRD,
        CONFIG_MAP,
        SERVICE_ACCOUNT,
        VALIDATING_WEBHOOK,
        MUTATING_WEBHOOK,
        ResourceType("", "v1", "Service", "services"),
        ResourceType("apps", "v1", "Deployment", "deployments"),
        ResourceType(_RBAC, "v1", "ClusterRole", "clusterroles", namespaced=False),
        ResourceType(_RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
        ResourceType(_RBAC, "v1", "Role", "roles"),
        ResourceType(_RBAC, "v1", "RoleBinding", "rolebindings"),
    )
}
"""Every kind the install renders, and where it lives in the API."""


class InstallError(Exception):
    """The install did not complete; the message names the object and why."""


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind']} {where}{meta['name']}"


def resource_type(obj: Mapping[str, Any]) -> ResourceType:
    try:
        return TYPES[(str(obj["apiVersion"]), str(obj["kind"]))]
    except KeyError:
        raise InstallError(f"{describe(obj)}: no API path known for {obj['apiVersion']}") from None


async def apply_object(connection: KubeConnection, obj: Mapping[str, Any]) -> None:
    kind = resource_type(obj)
    meta = obj["metadata"]
    path = kind.object_path(str(meta.get("namespace") or ""), str(meta["name"]))
    try:
        await connection.request(
            "PATCH",
            path,
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=dict(obj),
            content_type=APPLY_PATCH,
        )
    except KubeApiError as exc:
        raise InstallError(f"{describe(obj)}: {exc}") from None


async def _until(check: Callable[[], Any], timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise InstallError(f"{what()} after {timeout:g}s")
        await asyncio.sleep(POLL_S)


async def wait_served(
    connection: KubeConnection, crds: Sequence[Mapping[str, Any]], timeout: float
) -> None:
    """Until every CRD is Established and its kind answers a list at every version."""
    pending = list(crds)

    async def served() -> bool:
        for crd in list(pending):
            spec = crd["spec"]
            try:
                for version in spec["versions"]:
                    path = f"/apis/{spec['group']}/{version['name']}/{spec['names']['plural']}"
                    await connection.get(path, {"limit": "1"})
            except KubeApiError as exc:
                if exc.status in (404, 503):
                    return False
                raise InstallError(f"{describe(crd)}: {exc}") from None
            pending.remove(crd)
        return True

    await _until(
        served, timeout, lambda: "not served yet: " + ", ".join(describe(c) for c in pending)
    )


async def install_objects(
    connection: KubeConnection,
    namespace: str,
    objects: Sequence[Mapping[str, Any]],
    timeout: float,
    progress: Callable[[str], None],
) -> None:
    """The namespace, the CRDs (waited for), then everything else, by server-side apply."""
    await apply_object(
        connection, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    )
    crds = [o for o in objects if o["kind"] == CRD.kind]
    for crd in crds:
        await apply_object(connection, crd)
    if crds:
        await wait_served(connection, crds, timeout)
        progress(f"CRDs served: {len(crds)}")
    rest = [o for o in objects if o["kind"] != CRD.kind]
    for obj in rest:
        await apply_object(connection, obj)
    progress(f"applied: {len(rest)} objects in namespace {namespace} and cluster-wide")


async def wait_available(
    connection: KubeConnection,
    objects: Sequence[Mapping[str, Any]],
    timeout: float,
    progress: Callable[[str], None],
) -> None:
    """Until every Deployment has all its replicas updated and available."""
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    state: dict[str, str] = {}

    async def available() -> bool:
        done = True
        for obj in deployments:
            path = resource_type(obj).object_path(
                obj["metadata"]["namespace"], obj["metadata"]["name"]
            )
            live = await connection.get(path)
            wanted = int(live.get("spec", {}).get("replicas", 1))
            status = live.get("status") or {}
            ready = int(status.get("availableReplicas") or 0)
            updated = int(status.get("updatedReplicas") or 0)
            current = status.get("observedGeneration", 0) >= live["metadata"].get("generation", 0)
            state[describe(obj)] = f"{ready}/{wanted} available"
            if not (current and ready >= wanted and updated >= wanted):
                done = False
        return done

    await _until(
        available,
        timeout,
        lambda: "not available: " + ", ".join(f"{k} ({v})" for k, v in state.items()),
    )
    for name, text in state.items():
        progress(f"{name}: {text}")
