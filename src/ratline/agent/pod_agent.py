"""`ratline agent`: the sidecar container of an injected pod (pilot-agent's role).

From the pod's identity (`ratline.agent.pod_config`) it
1. serves SDS on the pod's Unix socket and keeps a certificate there: an EC key made
   here, a CSR to the control plane's CSR endpoint (CA_ADDR, trusting the mesh root the
   pod mounts) authenticated with the projected service-account token (audience
   `istio-ca`; the control plane checks it with a TokenReview), renewed at half-life;
2. writes Envoy's bootstrap (node id `sidecar~IP~POD.NS~NS.svc.cluster.local`, the
   ISTIO_META_* metadata, among them INTERCEPTION_MODE, which makes the control plane
   send the capture listeners) and runs Envoy (xDS over mTLS with that certificate);
3. answers readiness on 15021 and app probes and merged metrics on 15020
   (`ratline.agent.pod_health`);
4. on SIGTERM turns unready, drains Envoy (graceful, at most terminationDrainDuration,
   done early once no request is in flight), stops it and exits 0; if Envoy dies, the
   agent exits 1 so the kubelet restarts the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

import aiohttp
from aiohttp import web

from ratline.agent.bootstrap import BootstrapParams, build_bootstrap
from ratline.agent.capture import AGENT_HEALTH_PORT, AGENT_METRICS_PORT
from ratline.agent.envoy import EnvoyProcess
from ratline.agent.identity import CaClient, Enrollment, WorkloadIdentities
from ratline.agent.pod_config import ENVOY_ADMIN_PORT, PodAgentConfig, PodAgentConfigError
from ratline.agent.pod_health import PodHealth
from ratline.agent.sds import SdsServer, SecretStore
from ratline.settings import Settings

log = logging.getLogger("ratline.agent.pod")

LISTEN_ADDRESS = "0.0.0.0"
BOOTSTRAP_FILE = "envoy-rev.json"
ENVOY_LOG = "envoy.log"


class PodAgent:
    def __init__(self, config: PodAgentConfig, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.store = SecretStore()
        self.sds = SdsServer(self.store, config.socket_path)
        self.identities = WorkloadIdentities(
            self.store,
            CaClient(lambda: config.ca_address, config.root_cert_path),
            ttl_s=settings.cert_ttl_s,
        )
        params = BootstrapParams(
            node_id=config.node_id,
            cluster=config.cluster,
            xds_host=config.xds[0],
            xds_port=config.xds[1],
            admin_port=ENVOY_ADMIN_PORT,
            delta=settings.delta_xds,
            metadata=dict(config.metadata),
            sds_socket=str(config.socket_path),
            xds_tls=True,
        )
        self.envoy = EnvoyProcess(
            envoy=settings.envoy,
            bootstrap=build_bootstrap(params),
            config_path=config.proxy_dir / BOOTSTRAP_FILE,
            # A file of the pod's proxy volume: Envoy runs as the proxy's UID, which may
            # not reopen the container's stderr.
            log_path=config.proxy_dir / ENVOY_LOG,
            admin_port=ENVOY_ADMIN_PORT,
            concurrency=config.concurrency,
            log_level=settings.envoy_log_level,
        )
        self.draining = False
        self._session: aiohttp.ClientSession | None = None
        self._runners: list[web.AppRunner] = []

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2))
        return self._session

    async def ready(self) -> bool:
        return not self.draining and await self.envoy.is_ready(self._client())

    async def envoy_stats(self) -> str:
        try:
            async with self._client().get(f"{self.envoy.admin_url}/stats/prometheus") as r:
                return await r.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return ""

    def agent_metrics(self) -> str:
        node = self.config.node_id
        issued = self.identities.issued.get(node, 0)
        expiry = self.identities.expiry.get(node, 0.0)
        return (
            "# TYPE istio_agent_certificates_issued_total counter\n"
            f"istio_agent_certificates_issued_total {issued}\n"
            "# TYPE istio_agent_cert_expiry_seconds gauge\n"
            f"istio_agent_cert_expiry_seconds {expiry:.0f}\n"
        )

    async def _serve(self, app: web.Application, port: int) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, LISTEN_ADDRESS, port).start()
        self._runners.append(runner)

    async def run(self) -> int:
        token = self.config.token_path.read_text().strip()
        await self.sds.start()
        self.identities.enroll(
            Enrollment(
                self.config.node_id,
                self.config.namespace,
                self.config.service_account,
                token,
            )
        )
        health = PodHealth(
            self.config.app_probers, self.ready, self.envoy_stats, self.agent_metrics
        )
        await self._serve(health.readiness_app(), AGENT_HEALTH_PORT)
        await self._serve(health.status_app(), AGENT_METRICS_PORT)
        await self.envoy.start()
        log.info("%s: envoy started (pid %s)", self.config.node_id, self.envoy.pid)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        exited = asyncio.ensure_future(self.envoy.wait())
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                log.error("%s", self.envoy.exit_report())
                return 1
            self.draining = True
            drained = await self.envoy.drain(self.config.drain_s)
            log.info("%s: drained (%s); stopping envoy", self.config.node_id,
                     "no request in flight" if drained else "drain time over")
            return 0
        finally:
            stopping.cancel()
            await self.close()

    async def close(self) -> None:
        await self.envoy.stop()
        await self.identities.stop()
        await self.sds.stop()
        for runner in self._runners:
            await runner.cleanup()
        if self._session is not None:
            await self._session.close()


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = PodAgentConfig.from_env(os.environ)
    except PodAgentConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in (config.token_path, config.root_cert_path):
        if not path.is_file():
            print(f"error: {path} is missing (the injected volumes provide it)", file=sys.stderr)
            return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(PodAgent(config, Settings.from_env()).run())
    return 0
