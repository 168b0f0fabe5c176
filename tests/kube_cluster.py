"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager.

Built from the Go module proxy by `scripts/tools/build-kubernetes` and `build-etcd`
(found with `tests.tools.tool`), started on loopback ports with everything in one
temporary directory (etcd's data on /dev/shm), and stopped by PID. There is no kubelet
and no scheduler: `FakeNode` plays their part (binds pods through `pods/binding`, gives
them an IP and readiness through the `status` subresource), so the controller-manager's
EndpointSlice controller publishes them as it would for running pods.

`KubeCluster.kubectl(...)` runs the real kubectl with an admin kubeconfig;
`KubeCluster.kubeconfig_for(namespace, service_account)` makes a kubeconfig holding a
service-account token, so a client runs with that account's RBAC, as in a pod.

Part 2 (pods with sidecars) reuses this module: a kubelet would take `FakeNode`'s place.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from tests.helpers import free_port, kill_pids, pid_alive, run_checked, wait_for
from tests.kube_pki import ClusterCa, cert_pem, client_user, key_pem, kubeconfig, new_key
from tests.tools import tool

SERVICE_CIDR = "10.96.0.0/16"
"""Service cluster IPs are allocated here; nothing ever sends traffic to them."""
POD_CIDR = "10.244.0.0/16"
"""Pod IPs FakeNode hands out; they are never configured on any interface."""
NODE_NAME = "node-1"
NODE_ZONE = ("region-a", "zone-a")
ISSUER = "https://kubernetes.default.svc.cluster.local"
CONTROLLERS = "*,-node-lifecycle-controller,-taint-eviction-controller"
"""Without a kubelet, a Node never reports: the node lifecycle controller would evict."""


# ---- processes ---------------------------------------------------------------------------


@dataclass
class _Process:
    name: str
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.args,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL and reap (a crash, as far as the others can tell)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.pid:
            kill_pids([self.proc.pid], timeout=10)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class KubeCluster:
    """etcd + kube-apiserver + kube-controller-manager on loopback, in `root`."""

    root: Path
    etcd_dir: Path
    api_port: int = 0
    etcd_port: int = 0
    processes: dict[str, _Process] = field(default_factory=dict)
    admin_kubeconfig: Path = Path()
    ca_pem: bytes = b""

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    # ---- start and stop -----------------------------------------------------------------

    @classmethod
    def start(cls, root: Path) -> KubeCluster:
        etcd_dir = Path(tempfile.mkdtemp(prefix="ratline-etcd-", dir=_fast_tmp()))
        cluster = cls(root=root, etcd_dir=etcd_dir)
        try:
            cluster._start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _start(self) -> None:
        pki = self.root / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        ca = ClusterCa.create()
        self.ca_pem = cert_pem(ca.cert)
        (pki / "ca.crt").write_bytes(self.ca_pem)
        (pki / "ca.key").write_bytes(key_pem(ca.key))
        serving, serving_key = ca.issue(
            "kube-apiserver",
            dns=[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ],
            ips=["127.0.0.1", "10.96.0.1"],
            server=True,
        )
        (pki / "apiserver.crt").write_bytes(serving)
        (pki / "apiserver.key").write_bytes(serving_key)
        sa_key = new_key()
        (pki / "sa.key").write_bytes(key_pem(sa_key))
        (pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        self.api_port = free_port()
        self.etcd_port = free_port()
        admin = ca.issue("ratline-test-admin", organizations=["system:masters"])
        self.admin_kubeconfig = self.root / "admin.kubeconfig"
        self.admin_kubeconfig.write_text(kubeconfig(self.server, self.ca_pem, client_user(*admin)))
        manager = ca.issue("system:kube-controller-manager")
        manager_config = self.root / "controller-manager.kubeconfig"
        manager_config.write_text(kubeconfig(self.server, self.ca_pem, client_user(*manager)))

        peer_port = free_port()
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        self.processes["etcd"] = _Process(
            "etcd",
            [
                tool("etcd"),
                "--name=default",
                f"--data-dir={self.etcd_dir}",
                f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--log-level=warn",
                "--unsafe-no-fsync",
            ],
            logs / "etcd.log",
        )
        self.processes["kube-apiserver"] = _Process(
            "kube-apiserver",
            [
                tool("kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--authorization-mode=RBAC",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
            ],
            logs / "kube-apiserver.log",
        )
        self.processes["kube-controller-manager"] = _Process(
            "kube-controller-manager",
            [
                tool("kube-controller-manager"),
                f"--kubeconfig={manager_config}",
                f"--authentication-kubeconfig={manager_config}",
                f"--authorization-kubeconfig={manager_config}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                "--profiling=false",
                "--v=1",
            ],
            logs / "kube-controller-manager.log",
        )
        self.processes["etcd"].start()
        self.processes["kube-apiserver"].start()
        self.wait_ready()
        self.processes["kube-controller-manager"].start()
        self.create_node()
        # The ServiceAccount controller runs: `default` exists in `default` once it does.
        wait_for(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout=60,
            what="the controller-manager's default ServiceAccount",
        )

    def wait_ready(self, timeout: float = 90) -> None:
        """Until the apiserver answers /readyz (raises with its log's tail if it died)."""

        def ready() -> bool:
            api = self.processes["kube-apiserver"]
            if not api.alive():
                raise RuntimeError(f"kube-apiserver exited:\n{api.tail()}")
            proc = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
            return proc.returncode == 0 and proc.stdout.strip() == "ok"

        try:
            wait_for(ready, timeout=timeout, interval=0.2, what="kube-apiserver /readyz")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.processes['kube-apiserver'].tail()}") from None

    def kill_apiserver(self) -> None:
        self.processes["kube-apiserver"].kill()

    def restart_apiserver(self) -> None:
        api = self.processes["kube-apiserver"]
        if api.alive():
            api.kill()
        api.start()
        self.wait_ready()

    def compact_etcd(self) -> int:
        """Compact etcd's history up to now (as the API server does every few minutes), so
        watches from older resourceVersions get 410 Gone; returns the revision."""

        def call(path: str, body: dict[str, Any]) -> Any:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.etcd_port}{path}", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}, method="POST",
            )
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(request, timeout=10) as resp:
                return json.loads(resp.read())

        revision = int(call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
                       ["header"]["revision"])
        call("/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values() if p.pid]

    def stop(self) -> None:
        for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
            proc = self.processes.get(name)
            if proc is not None:
                proc.stop()
        shutil.rmtree(self.etcd_dir, ignore_errors=True)

    def rss_kib(self) -> dict[str, int]:
        """Resident memory of each process, KiB (for reports)."""
        out = {}
        for name, proc in self.processes.items():
            if proc.pid and pid_alive(proc.pid):
                with open(f"/proc/{proc.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmRSS:"):
                            out[name] = int(line.split()[1])
        return out

    # ---- clients ------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 60,
        kubeconfig_path: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl (admin unless `kubeconfig_path` says otherwise)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "HTTP", "http"))}
        env["KUBECONFIG"] = str(kubeconfig_path or self.admin_kubeconfig)
        env["KUBECACHEDIR"] = str(self.root / "kubectl-cache")
        return run_checked(
            [tool("kubectl"), *args], stdin=stdin, check=check, timeout=timeout, env=env
        )

    def forget_discovery(self) -> None:
        """Drop kubectl's discovery cache: after CRDs are deleted it would still resolve
        their resource names (`gateways` to the Gateway API's) for minutes."""
        shutil.rmtree(self.root / "kubectl-cache" / "discovery", ignore_errors=True)

    def apply(
        self, yaml_text: str, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", *args, stdin=yaml_text, check=check)

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def token(
        self, namespace: str, service_account: str, audience: str | None = None, seconds: int = 3600
    ) -> str:
        """A TokenRequest token of a service account (bound to `audience` if given)."""
        args = ["create", "token", service_account, "-n", namespace, f"--duration={seconds}s"]
        if audience:
            args.append(f"--audience={audience}")
        return self.kubectl(*args).stdout.strip()

    def kubeconfig_for(self, namespace: str, service_account: str) -> Path:
        """A kubeconfig authenticating as a service account (its RBAC applies)."""
        path = self.root / f"{namespace}.{service_account}.kubeconfig"
        token = self.token(namespace, service_account, seconds=24 * 3600)
        path.write_text(kubeconfig(self.server, self.ca_pem, {"token": token}))
        return path

    def create_node(self, name: str = NODE_NAME) -> None:
        region, zone = NODE_ZONE
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "topology.kubernetes.io/region": region,
                    "topology.kubernetes.io/zone": zone,
                },
            },
        }
        self.apply(json.dumps(node))


def _fast_tmp() -> str:
    return "/dev/shm" if os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


# ---- the node's part ---------------------------------------------------------------------


class FakeNode:
    """What a scheduler and a kubelet would do for pods, done through the API.

    `run(pod)`: bind it to the Node (`pods/binding`, as a scheduler), then set its IP,
    phase Running and Ready (`status` subresource, as a kubelet). `set_ready` flips
    readiness; `delete` removes a pod at once (no kubelet confirms a graceful one).
    """

    def __init__(self, cluster: KubeCluster, node: str = NODE_NAME) -> None:
        self.cluster = cluster
        self.node = node
        self._next_ip = int(ipaddress.ip_address("10.244.0.10"))
        self.ips: dict[tuple[str, str], str] = {}

    def _ip(self, namespace: str, name: str) -> str:
        key = (namespace, name)
        if key not in self.ips:
            self.ips[key] = str(ipaddress.ip_address(self._next_ip))
            self._next_ip += 1
        return self.ips[key]

    def pods(self, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
        items: list[dict[str, Any]] = self.cluster.get_json(*args)["items"]
        return items

    def bind(self, namespace: str, name: str) -> None:
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node},
        }
        self.cluster.kubectl(
            "create",
            "--raw",
            f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
            "-f",
            "-",
            stdin=json.dumps(binding),
        )

    def set_status(self, namespace: str, name: str, ready: bool) -> str:
        ip = self._ip(namespace, name)
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        flag = "True" if ready else "False"
        status = {
            "status": {
                "phase": "Running",
                "hostIP": "192.0.2.1",
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": now,
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                    {"type": "Ready", "status": flag, "lastTransitionTime": now},
                ],
            }
        }
        self.cluster.kubectl(
            "patch",
            "pod",
            name,
            "-n",
            namespace,
            "--subresource=status",
            "--type=merge",
            "-p",
            json.dumps(status),
        )
        return ip

    def run(self, namespace: str, name: str, ready: bool = True) -> str:
        """Bind (if not yet) and start one pod; returns its IP."""
        pod = self.cluster.get_json("pod", name, "-n", namespace)
        if not pod["spec"].get("nodeName"):
            self.bind(namespace, name)
        return self.set_status(namespace, name, ready)

    def run_all(
        self, namespace: str, expected: int, selector: str = "", timeout: float = 60
    ) -> dict[str, str]:
        """Wait until `expected` pods exist (the ReplicaSet controller makes them), run
        every one; returns pod name → IP."""
        pods = wait_for(
            lambda: (lambda found: found if len(found) >= expected else None)(
                self.pods(namespace, selector)
            ),
            timeout=timeout,
            interval=0.2,
            what=f"{expected} pods in {namespace}",
        )
        return {p["metadata"]["name"]: self.run(namespace, p["metadata"]["name"]) for p in pods}

    def set_ready(self, namespace: str, name: str, ready: bool) -> None:
        self.set_status(namespace, name, ready)

    def delete(self, namespace: str, name: str) -> None:
        self.cluster.kubectl(
            "delete", "pod", name, "-n", namespace, "--grace-period=0", "--force", "--wait=false"
        )
        self.ips.pop((namespace, name), None)


@contextlib.contextmanager
def running_cluster(root: Path) -> Iterator[KubeCluster]:
    """A cluster for the duration of the block, stopped (by PID) however it ends."""
    started = time.monotonic()
    cluster = KubeCluster.start(root)
    cluster.start_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        cluster.stop()
