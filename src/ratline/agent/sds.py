"""The agent's SDS server: serves each local Envoy its workload certificate and the mesh
trust bundle over a Unix socket, and pushes new ones when certificates rotate.

Secrets: `default` (the proxy's cert chain and private key) and `ROOTCA` (the roots).
Envoy names itself in its first request; the server answers only for nodes the agent
enrolled, and holds a request open until that node's certificate exists. Private keys
live only in this process's memory and are sent only over the local socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

log = logging.getLogger("ratline.agent.sds")

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
DEFAULT_SECRET = "default"
ROOT_SECRET = "ROOTCA"


@dataclass(frozen=True)
class WorkloadSecrets:
    """One proxy's current certificate (chain PEM, key PEM) and trust bundle."""

    chain_pem: str
    key_pem: str
    root_pem: str
    version: int


def secret_messages(secrets: WorkloadSecrets, names: list[str]) -> list[secret_pb2.Secret]:
    """The Secret resources for the names Envoy asked for (unknown names are skipped)."""
    result = []
    for name in names:
        if name == DEFAULT_SECRET:
            cert = common_pb2.TlsCertificate()
            cert.certificate_chain.inline_bytes = secrets.chain_pem.encode()
            cert.private_key.inline_bytes = secrets.key_pem.encode()
            result.append(secret_pb2.Secret(name=name, tls_certificate=cert))
        elif name == ROOT_SECRET:
            validation = common_pb2.CertificateValidationContext()
            validation.trusted_ca.inline_bytes = secrets.root_pem.encode()
            result.append(secret_pb2.Secret(name=name, validation_context=validation))
    return result


class SecretStore:
    """Secrets by node id; waiters wake when any node's secrets change."""

    def __init__(self) -> None:
        self._secrets: dict[str, WorkloadSecrets] = {}
        self._changed = asyncio.Condition()
        self._version = 0

    def get(self, node_id: str) -> WorkloadSecrets | None:
        return self._secrets.get(node_id)

    async def put(self, node_id: str, chain_pem: str, key_pem: str, root_pem: str) -> None:
        async with self._changed:
            self._version += 1
            self._secrets[node_id] = WorkloadSecrets(chain_pem, key_pem, root_pem, self._version)
            self._changed.notify_all()

    async def remove(self, node_id: str) -> None:
        async with self._changed:
            self._secrets.pop(node_id, None)
            self._changed.notify_all()

    async def wait_change(self, node_id: str, seen_version: int | None) -> WorkloadSecrets:
        """The node's secrets once their version differs from `seen_version`."""
        async with self._changed:
            while True:
                current = self._secrets.get(node_id)
                if current is not None and current.version != seen_version:
                    return current
                await self._changed.wait()


class _SdsServicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, store: SecretStore) -> None:
        self.store = store

    async def StreamSecrets(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        node_id = ""
        names: list[str] = []
        sent_version: int | None = None
        requests: asyncio.Queue[Any] = asyncio.Queue()

        async def read() -> None:
            async for request in request_iterator:
                await requests.put(request)
            await requests.put(None)

        reader = asyncio.create_task(read())
        nonce = 0
        try:
            while True:
                waiters: list[asyncio.Task[Any]] = [asyncio.ensure_future(requests.get())]
                if node_id and names:
                    waiters.append(
                        asyncio.ensure_future(self.store.wait_change(node_id, sent_version))
                    )
                done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for task in pending:
                    task.cancel()
                secrets: WorkloadSecrets | None = None
                for task in done:
                    value = task.result()
                    if value is None:
                        return
                    if isinstance(value, WorkloadSecrets):
                        secrets = value
                        continue
                    node_id = node_id or value.node.id
                    if value.error_detail.message:
                        log.warning("%s rejected secrets: %s", node_id, value.error_detail.message)
                    if list(value.resource_names) != names:
                        names = list(value.resource_names)
                        sent_version = None
                        secrets = self.store.get(node_id)
                if secrets is None or not names:
                    continue
                nonce += 1
                sent_version = secrets.version
                response = discovery_pb2.DiscoveryResponse(
                    version_info=str(secrets.version), type_url=SECRET_TYPE, nonce=str(nonce)
                )
                for message in secret_messages(secrets, names):
                    packed = any_pb2.Any()
                    packed.Pack(message)
                    response.resources.append(packed)
                yield response
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


class SdsServer:
    """gRPC SDS on a Unix socket (mode 0600), for the Envoys of this host."""

    def __init__(self, store: SecretStore, socket_path: Path) -> None:
        self.store = store
        self.socket_path = socket_path
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        server = grpc.aio.server()
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(_SdsServicer(self.store), server)
        if server.add_insecure_port(f"unix:{self.socket_path}") == 0:
            raise OSError(f"SDS server could not bind unix:{self.socket_path}")
        await server.start()
        os.chmod(self.socket_path, 0o600)
        self._server = server

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0.5)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
