"""The local runner's agent role for security: one SDS server for the host's proxies and
the certificates of every instance it starts.

Like a kubelet handing each pod its service-account token, the runner mints one token per
instance (it knows the instance's namespace and service account because it starts it)
with the mesh's token key, and the agent trades it for that instance's certificate.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ratline.agent.identity import CaClient, Enrollment, WorkloadIdentities
from ratline.agent.sds import SdsServer, SecretStore
from ratline.ca.files import read_private
from ratline.ca.tokens import mint_token
from ratline.runtime.local.runfile import SDS_SOCKET_NAME, SDS_TEMP_PREFIX, remove_sds_socket
from ratline.settings import Settings, state_dir

log = logging.getLogger("ratline.runner")

MAX_SOCKET_PATH = 100
"""Unix socket paths are limited to 108 bytes; longer state dirs use a private temp dir."""


def read_admin_token(mesh_dir: Path) -> str | None:
    """The admin API credential the control plane created, if there is one."""
    path = state_dir(mesh_dir) / "admin-token"
    if not path.exists():
        return None
    return read_private(path).decode().strip()


def sds_socket_path(mesh_dir: Path) -> Path:
    path = state_dir(mesh_dir) / SDS_SOCKET_NAME
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    return Path(tempfile.mkdtemp(prefix=SDS_TEMP_PREFIX)) / SDS_SOCKET_NAME


class LocalSecurity:
    """SDS server + certificate rotation for every proxy of this runner."""

    def __init__(
        self, mesh_dir: Path, settings: Settings, ca_endpoint: Callable[[], str | None],
        xds_tls: bool,
    ) -> None:
        self.mesh_dir = mesh_dir
        self.xds_tls = xds_tls
        ca_dir = state_dir(mesh_dir) / "ca"
        self.token_key = read_private(ca_dir / "token-key")
        self.store = SecretStore()
        self.socket_path = sds_socket_path(mesh_dir)
        self.sds = SdsServer(self.store, self.socket_path)
        client = CaClient(ca_endpoint, ca_dir / "trust-bundle.pem")
        self.identities = WorkloadIdentities(self.store, client, settings.cert_ttl_s)

    async def start(self) -> None:
        await self.sds.start()
        log.info("SDS server on unix:%s", self.socket_path)

    def bootstrap_fields(self) -> dict[str, Any]:
        """Extra `BootstrapParams` fields for a proxy of this runner."""
        return {"sds_socket": str(self.socket_path), "xds_tls": self.xds_tls}

    def enroll(self, node_id: str, namespace: str, service_account: str, instance: str) -> None:
        token = mint_token(
            self.token_key, namespace=namespace, service_account=service_account,
            instance=instance,
        )
        self.identities.enroll(Enrollment(node_id, namespace, service_account, token))

    async def forget(self, node_id: str) -> None:
        await self.identities.forget(node_id)

    async def stop(self) -> None:
        await self.identities.stop()
        await self.sds.stop()
        remove_sds_socket(self.mesh_dir, self.socket_path)
