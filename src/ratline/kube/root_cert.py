"""The mesh CA's root in every namespace: ConfigMap `istio-ca-root-cert`, as istiod keeps it.

Injected pods mount it (`root-cert.pem`) so their agent trusts the control plane's CSR
endpoint and xDS server. The leader reconciles: it lists the namespaces and applies the
ConfigMap (server-side apply, Ratline's field manager) where it is missing or differs,
then again every `interval_s`; a namespace created later gets it within that time.
"""

from __future__ import annotations

import asyncio
import logging

from ratline.kube.connection import APPLY_PATCH, FIELD_MANAGER, KubeApiError, KubeConnection
from ratline.kube.resources import CONFIG_MAP, NAMESPACE

log = logging.getLogger("ratline.kube.root_cert")

ROOT_CERT_CONFIGMAP = "istio-ca-root-cert"
ROOT_CERT_KEY = "root-cert.pem"


def root_cert_configmap(namespace: str, root_pem: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ROOT_CERT_CONFIGMAP,
            "namespace": namespace,
            "labels": {"istio.io/config": "true"},
        },
        "data": {ROOT_CERT_KEY: root_pem},
    }


async def publish_once(connection: KubeConnection, root_pem: str, known: dict[str, str]) -> None:
    """Apply the ConfigMap in every namespace not yet known to hold this root."""
    answer = await connection.get(NAMESPACE.collection_path(None))
    for item in answer.get("items") or ():
        namespace = str(item["metadata"]["name"])
        if known.get(namespace) == root_pem or item.get("status", {}).get("phase") == "Terminating":
            continue
        await connection.request(
            "PATCH",
            CONFIG_MAP.object_path(namespace, ROOT_CERT_CONFIGMAP),
            query={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=root_cert_configmap(namespace, root_pem),
            content_type=APPLY_PATCH,
        )
        known[namespace] = root_pem


async def publish_root_cert(
    connection: KubeConnection, root_pem: str, interval_s: float = 2.0
) -> None:
    """Keep the root in every namespace until cancelled."""
    known: dict[str, str] = {}
    while True:
        try:
            await publish_once(connection, root_pem, known)
        except KubeApiError as exc:
            log.warning("%s not published everywhere: %s", ROOT_CERT_CONFIGMAP, exc)
            known.clear()
        await asyncio.sleep(interval_s)
