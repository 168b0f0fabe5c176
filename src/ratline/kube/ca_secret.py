"""The mesh CA shared by every control plane replica through Secrets, as istiod does.

`cacerts` (Istio's plugged-in CA: `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`,
`cert-chain.pem`) wins when it exists in the control plane's namespace. Otherwise the
self-signed CA lives in `istio-ca-secret` (`ca-cert.pem`, `ca-key.pem`): the first
replica creates it from the CA it made, and a replica that loses that race (409) uses the
winner's. Either way the files go to the state folder (0600) where `ratline.ca` loads
them, so every replica signs with the same key and every proxy trusts every replica.
"""

from __future__ import annotations

import base64
from pathlib import Path

from ratline.ca.authority import PLUGGED_FILES, ROOT_CERT, ROOT_KEY
from ratline.ca.files import make_private_dir, read_private, write_private
from ratline.kube.connection import KubeApiError, KubeConnection
from ratline.kube.resources import SECRET

PLUGGED_SECRET = "cacerts"
SELF_SIGNED_SECRET = "istio-ca-secret"
SELF_SIGNED_KEYS = {"ca-cert.pem": ROOT_CERT, "ca-key.pem": ROOT_KEY}
"""Key in the Secret → file of the self-created CA folder."""


def _decoded(secret: dict[str, object]) -> dict[str, bytes]:
    data = secret.get("data") or {}
    assert isinstance(data, dict)
    return {str(k): base64.b64decode(str(v)) for k, v in data.items()}


async def _get(connection: KubeConnection, namespace: str, name: str) -> dict[str, bytes] | None:
    try:
        return _decoded(await connection.get(SECRET.object_path(namespace, name)))
    except KubeApiError as exc:
        if exc.status == 404:
            return None
        raise


async def fetch_plugged_ca(connection: KubeConnection, namespace: str, folder: Path) -> bool:
    """Write the `cacerts` Secret's files into `folder`; False when there is none."""
    data = await _get(connection, namespace, PLUGGED_SECRET)
    if data is None:
        return False
    make_private_dir(folder)
    for name in PLUGGED_FILES:
        if name in data:
            write_private(folder / name, data[name])
    return True


async def sync_self_signed_ca(connection: KubeConnection, namespace: str, ca_dir: Path) -> str:
    """Make `ca_dir`'s self-created CA the cluster's: adopt the Secret's, or publish ours.

    Returns what happened, for the log. Call before loading the CA; when it returns
    `published`, the CA in `ca_dir` must already exist (see `publish_self_signed_ca`).
    """
    data = await _get(connection, namespace, SELF_SIGNED_SECRET)
    if data is None or not all(k in data for k in SELF_SIGNED_KEYS):
        return "absent"
    make_private_dir(ca_dir)
    for key, file in SELF_SIGNED_KEYS.items():
        write_private(ca_dir / file, data[key])
    return "adopted"


async def publish_self_signed_ca(connection: KubeConnection, namespace: str, ca_dir: Path) -> bool:
    """Create `istio-ca-secret` from `ca_dir`; False when another replica created it first."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "istio.io/ca-root",
        "metadata": {"name": SELF_SIGNED_SECRET, "namespace": namespace},
        "data": {
            "ca-cert.pem": base64.b64encode((ca_dir / ROOT_CERT).read_bytes()).decode(),
            "ca-key.pem": base64.b64encode(read_private(ca_dir / ROOT_KEY)).decode(),
        },
    }
    try:
        await connection.request("POST", SECRET.collection_path(namespace), body=body)
    except KubeApiError as exc:
        if exc.status == 409:
            return False
        raise
    return True
