"""Ratline installed into a test cluster and its control plane run against it.

`install(cluster, crds=...)` applies what a user applies first: the control plane's
namespace, CRDs (Ratline's, `ratline manifest crds`, or Istio's own) and RBAC
(`ratline manifest rbac`). `KubeControlPlane` runs `python -m ratline.controlplane
--kubeconfig` as the `istiod` service account (so its RBAC is the one Ratline ships),
reads its ready file, and stops it by PID; the CLI commands run with `--mesh STATE_DIR`.
Part 2 (pods with sidecars) can reuse both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

from ratline.kube.crds import all_crds
from tests.helpers import free_fixed_port, kill_pids, run_checked, wait_for
from tests.kube_cluster import KubeCluster
from tests.tools import TOOLS_DIR

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "istio-system"
ISTIO_FILES = TOOLS_DIR / "istio-files"
ISTIO_CRDS = ISTIO_FILES / "manifests/charts/base/files/crd-all.gen.yaml"
BOOKINFO = ISTIO_FILES / "samples/bookinfo/platform/kube/bookinfo.yaml"
BOOKINFO_NETWORKING = ISTIO_FILES / "samples/bookinfo/networking"
WEBHOOK_CONFIGURATION = f"ratline-validator-{NAMESPACE}"
INJECTOR_CONFIGURATION = "ratline-sidecar-injector"


def istio_file(path: Path) -> str:
    """An Istio file from `scripts/tools/build-istio-files` (fails with the fix if absent)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run scripts/install-test-deps")
    return path.read_text()


def ratline_cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return run_checked(
        [sys.executable, "-m", "ratline", *args], env=env, check=check, timeout=timeout, cwd=REPO
    )


def wait_crds_established(cluster: KubeCluster, names: tuple[str, ...] = ()) -> None:
    """Until every CRD (or these) is Established. Not `kubectl wait`: it fails at once on a
    CRD the apiserver has not given any condition yet (`.status.conditions accessor error`)."""

    def established() -> bool:
        found = cluster.get_json("crd", *names)
        items = found.get("items", [found]) if names else found.get("items", [])
        return bool(items) and all(
            any(
                c.get("type") == "Established" and c.get("status") == "True"
                for c in (item.get("status") or {}).get("conditions") or ()
            )
            for item in items
        )

    wait_for(established, timeout=60, interval=0.2, what="the CRDs Established")


def install(cluster: KubeCluster, crds: str = "ratline", gateway_api: bool = False) -> None:
    """The control plane's namespace, the CRDs (`ratline` or `istio`; with `gateway_api`,
    `ratline manifest crds --gateway-api`'s) and its RBAC."""
    cluster.apply(
        json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    )
    wanted = ["--gateway-api"] if gateway_api else []
    text = (ratline_cli("manifest", "crds", *wanted).stdout if crds == "ratline"
            else istio_file(ISTIO_CRDS))
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=text)
    wait_crds_established(cluster)
    cluster.apply(ratline_cli("manifest", "rbac").stdout)


def remove_cluster_wide(cluster: KubeCluster) -> None:
    """Other modules' cluster-wide objects of the chart's names (`ratline manifest
    crds|rbac` applied with kubectl): Helm refuses to adopt objects it did not create."""
    names = [c["metadata"]["name"] for c in all_crds()]
    cluster.kubectl("delete", "crd", *names, "--ignore-not-found", "--wait=true")
    cluster.kubectl(
        "delete",
        "clusterrole/ratline-controlplane",
        "clusterrolebinding/ratline-controlplane",
        f"mutatingwebhookconfiguration/{INJECTOR_CONFIGURATION}",
        "--ignore-not-found",
    )


def control_plane_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RATLINE_", "KUBE"))}
    env.update(
        RATLINE_KUBE_WEBHOOK_PORT="0",
        RATLINE_KUBE_PROXY_OUTBOUND_PORT=str(free_fixed_port()),
        RATLINE_GATEWAY_PORT_OFFSET=str(free_fixed_port() - 80),
        RATLINE_KUBE_LEASE_DURATION_S="3",
        RATLINE_KUBE_STATUS_DEBOUNCE_MS="200",
        RATLINE_READY_TIMEOUT_S="60",
        PYTHONPATH=str(REPO / "src"),
    )
    env.update(extra)
    return env


class ControlPlaneProcess:
    """One `python -m ratline.controlplane` process, its ready file and admin API."""

    def __init__(self, work: Path, env: dict[str, str], state: Path) -> None:
        self.work = work
        self.env = env
        self.state = state
        """The folder whose `.ratline/` holds the admin token (a mesh dir or --state-dir)."""
        self.ready_file = work / "ready.json"
        self.log = work / "controlplane.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def args(self) -> list[str]:
        raise NotImplementedError

    def process_env(self) -> dict[str, str]:
        return self.env

    def start(self) -> Self:
        self.work.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "ratline.controlplane",
            *self.args(),
            "--ready-file",
            str(self.ready_file),
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.process_env(),
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the control plane exited:\n{self.tail()}")
            return self.ready_file.exists()

        wait_for(ready, timeout=90, interval=0.1, what="the control plane's ready file")
        self.info = json.loads(self.ready_file.read_text())
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def admin_token(self) -> str:
        return (self.state / ".ratline" / "admin-token").read_text().strip()

    def admin(self, path: str, body: Any = None, method: str = "GET") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://{self.info['admin']}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.admin_token()}",
                "Content-Type": "application/json",
            },
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=10) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_pids([self.proc.pid], timeout=10)
            self.proc.wait(timeout=5)


class LocalControlPlane(ControlPlaneProcess):
    """The local mode's control plane on a mesh directory (instances from `put_instances`)."""

    def __init__(self, mesh_dir: Path, work: Path, env: dict[str, str]) -> None:
        super().__init__(work, env, mesh_dir)

    def args(self) -> list[str]:
        return ["--mesh-dir", str(self.state)]

    def put_instances(self, instances: list[dict[str, Any]], runner: str = "test") -> None:
        self.admin("/v1/instances", {"runner": runner, "instances": instances}, method="PUT")


class KubeControlPlane(ControlPlaneProcess):
    """The control plane against the cluster, as the `istiod` service account (of
    `namespace`: give the control plane the same as RATLINE_KUBE_NAMESPACE).

    `in_cluster`: run it as in a pod, `--in-cluster`, with the account's token and the
    cluster's CA in a service-account directory and `KUBERNETES_SERVICE_HOST`/`_PORT`
    naming the API server (no kubelet here to mount them)."""

    def __init__(self, cluster: KubeCluster, work: Path, env: dict[str, str],
                 namespace: str = NAMESPACE, in_cluster: bool = False) -> None:
        super().__init__(work, env, work / "state")
        self.cluster = cluster
        self.namespace = namespace
        self.in_cluster = in_cluster

    def args(self) -> list[str]:
        if self.in_cluster:
            return ["--in-cluster", "--state-dir", str(self.state)]
        kubeconfig = self.cluster.kubeconfig_for(self.namespace, "istiod")
        return ["--kubeconfig", str(kubeconfig), "--state-dir", str(self.state)]

    def process_env(self) -> dict[str, str]:
        if not self.in_cluster:
            return self.env
        account = self.work / "serviceaccount"
        account.mkdir(parents=True, exist_ok=True)
        token = self.cluster.token(self.namespace, "istiod", seconds=24 * 3600)
        (account / "token").write_text(token)
        (account / "ca.crt").write_bytes(self.cluster.ca_pem)
        server = urllib.parse.urlsplit(self.cluster.server)
        env = {k: v for k, v in self.env.items() if k != "KUBECONFIG"}
        return env | {
            "KUBERNETES_SERVICE_HOST": str(server.hostname),
            "KUBERNETES_SERVICE_PORT": str(server.port),
            "RATLINE_KUBE_SERVICE_ACCOUNT_DIR": str(account),
        }

    def ratline(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return ratline_cli(*args, "--mesh", str(self.state), env=self.env, check=check)

    @property
    def trust_bundle(self) -> Path:
        return self.state / ".ratline" / "ca" / "trust-bundle.pem"

    def uninstall_webhook(self) -> None:
        """The webhooks fail closed: without a control plane, Istio config cannot change
        and pods to inject cannot be created."""
        self.cluster.kubectl(
            "delete",
            "validatingwebhookconfiguration",
            f"ratline-validator-{self.namespace}",
            "--ignore-not-found",
        )
        self.cluster.kubectl(
            "delete", "mutatingwebhookconfiguration", INJECTOR_CONFIGURATION, "--ignore-not-found"
        )
