"""Certificates for the scale run's real Envoys: the agent's SDS server, on the bench's
one grpc.aio loop (`bench.aioloop`).

`ratline up` gives every sidecar certificates through the agent's SDS socket; the scale
benchmark starts bare Envoys, so it runs the same SDS server itself, with throwaway
certificates from `openssl`. Without it, Envoy waits out its 15 s initial fetch timeout
for the secrets of mTLS listeners and clusters.
"""

from __future__ import annotations

from pathlib import Path

from bench import aioloop
from bench.staticenvoy import make_certificates
from ratline.agent.sds import SdsServer, SecretStore


class BenchSds:
    """An SDS server on a Unix socket serving one certificate to the given nodes."""

    def __init__(self, work: Path, node_ids: list[str]) -> None:
        self.socket_path = work / "sds.sock"
        certs = make_certificates(work / "sds-certs")
        self._chain = certs["client_crt"].read_text()
        self._key = certs["client_key"].read_text()
        self._root = certs["ca"].read_text()
        self._nodes = node_ids
        self._server: SdsServer | None = None

    async def _start(self) -> None:
        store = SecretStore()
        for node in self._nodes:
            await store.put(node, self._chain, self._key, self._root)
        self._server = SdsServer(store, self.socket_path)
        await self._server.start()

    def __enter__(self) -> BenchSds:
        aioloop.run(self._start(), 30)
        return self

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    def __exit__(self, *_exc: object) -> None:
        aioloop.run(self._stop(), 30)
