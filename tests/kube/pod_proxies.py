"""Real Envoys with pod identities, for the Kubernetes tests: the pod agent's part.

`python -m tests.kube.pod_proxies CONFIG.json` plays, for a few pods, what Istio's agent
does in each pod (part 2 puts a real one there): it makes each proxy's key, sends a CSR
with the pod's service-account token (audience `istio-ca`, from a TokenRequest) to the
control plane's CSR endpoint, serves the certificate to the proxy over SDS, and runs Envoy
with the pod's node id (`sidecar~POD_IP~POD.NS~NS.svc.cluster.local`) over mTLS xDS.

CONFIG: `{"envoy", "xds", "ca", "trust_bundle", "work", "delta", "proxies": [{"node_id",
"cluster", "namespace", "service_account", "token", "admin_port"}]}`. Writes
`WORK/ready.json` (`{"pids": [...]}`) once every Envoy runs; SIGTERM stops them all.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from ratline.agent.bootstrap import BootstrapParams, build_bootstrap
from ratline.agent.envoy import EnvoyProcess
from ratline.agent.identity import CaClient, Enrollment, WorkloadIdentities
from ratline.agent.sds import SdsServer, SecretStore


async def run(config: dict[str, Any]) -> None:
    work = Path(config["work"])
    work.mkdir(parents=True, exist_ok=True)
    store = SecretStore()
    sds = SdsServer(store, work / "sds.sock")
    await sds.start()
    client = CaClient(lambda: str(config["ca"]), Path(config["trust_bundle"]))
    identities = WorkloadIdentities(store, client, ttl_s=3600)
    host, port = str(config["xds"]).rsplit(":", 1)
    envoys = []
    for proxy in config["proxies"]:
        identities.enroll(
            Enrollment(
                proxy["node_id"], proxy["namespace"], proxy["service_account"], proxy["token"]
            )
        )
        params = BootstrapParams(
            node_id=proxy["node_id"],
            cluster=proxy["cluster"],
            xds_host=host,
            xds_port=int(port),
            admin_port=int(proxy["admin_port"]),
            delta=bool(config.get("delta", True)),
            sds_socket=str(work / "sds.sock"),
            xds_tls=True,
        )
        name = proxy["node_id"].split("~")[2]
        envoy = EnvoyProcess(
            envoy=config["envoy"],
            bootstrap=build_bootstrap(params),
            config_path=work / f"{name}.json",
            log_path=work / f"{name}.log",
            admin_port=int(proxy["admin_port"]),
            log_level="warning",
        )
        await envoy.start()
        envoys.append(envoy)
    (work / "ready.json").write_text(json.dumps({"pids": [e.pid for e in envoys]}))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for envoy in envoys:
        await envoy.stop(timeout_s=3)
    await identities.stop()
    await sds.stop()


if __name__ == "__main__":
    asyncio.run(run(json.loads(Path(sys.argv[1]).read_text())))
