"""The tests' node agent for injected pods: what a kubelet with a bridge CNI would do.

No real kubelet runs here (a container runtime, images and cgroup v1 settings were more
than this work's time allowed); `PodNode` plays that role only, and the product runs
unmodified inside it: the injection webhook's spec, `ratline iptables`, `ratline agent`
and Envoy. For each pod it is asked to run (after admission, so the spec is the mutated
one stored in the API server), it

- binds the pod to the Node (`pods/binding`, a scheduler's part);
- makes a network namespace with a veth pair to a host bridge (`rlbrN`), a pod IP from
  a private /24 used only by these namespaces, a route for the service CIDR through the
  bridge (captured connections are redirected inside the pod and never leave it; the host
  does not forward), and `/etc/netns/NS/hosts` naming every Service's cluster IP (how the
  pod resolves `reviews`, `reviews.bookinfo.svc.cluster.local`; every pod's is rewritten
  whenever a pod starts, or on `refresh_hosts`), a resolv.conf with no reachable server;
- materialises the volumes (emptyDir, configMap, the projected service-account token
  through a TokenRequest with the volume's audience, downwardAPI labels/annotations) and
  runs each container's command as a process in the namespace, the volumes bind-mounted at
  their mountPaths in the process's own mount namespace, as its `runAsUser`/`runAsGroup`:
  init containers in order, each to completion, a native sidecar (`restartPolicy:
  Always`) started and its startup probe waited for, then the app containers. Images are
  the host's files: an image without a command is looked up in `images`;
- writes the pod's status (IP, phase, Ready from the containers' readiness probes) and,
  when every app container of a pod that does not restart has exited, stops its sidecars
  (SIGTERM: the agent drains) and sets Succeeded or Failed, as a kubelet with native
  sidecars does for a Job;
- on `delete` (or `stop`) stops app containers, then sidecars, kills whatever is left in
  the namespace by PID, deletes the namespace (and its veth), its /etc/netns folder and
  the pod (grace period 0: the node confirms the deletion).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers import wait_for
from tests.kube_cluster import NODE_NAME, SERVICE_CIDR, KubeCluster

PROBE_TIMEOUT_S = 1.0
STARTUP_TIMEOUT_S = 60.0
INIT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
MONITOR_INTERVAL_S = 0.2
KEPT_HOST_PATHS = tuple(
    sorted({Path(__file__).resolve().parents[1], Path(sys.prefix).resolve()})
)
"""This checkout and the interpreter's prefix: containers run commands from both."""
KEEP_ASIDE = Path("/run/ratline-test-pods")
"""Where a kept path is bound aside inside a container's mount namespace (outside /tmp)."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=check)


def free_subnet() -> int:
    """A third octet N such that 10.245.N.0/24 is on no interface of this host."""
    used = _run("ip", "-4", "-o", "addr").stdout
    for n in range(20 + os.getpid() % 200, 255):
        if f" 10.245.{n}." not in used:
            return n
    raise RuntimeError("no free 10.245.N.0/24 subnet")


def http_ok(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as resp:
            return 200 <= resp.status < 400
    except (OSError, ValueError):
        return False


@dataclass
class Container:
    name: str
    spec: dict[str, Any]
    sidecar: bool = False
    proc: subprocess.Popen[bytes] | None = None

    @property
    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


@dataclass
class RunningPod:
    namespace: str
    name: str
    netns: str
    ip: str
    host_veth: str
    root: Path
    pod: dict[str, Any]
    init: list[Container] = field(default_factory=list)
    apps: list[Container] = field(default_factory=list)
    phase: str = "Pending"
    ready: bool = False
    stopping: bool = False
    monitor: threading.Thread | None = None

    @property
    def sidecars(self) -> list[Container]:
        return [c for c in self.init if c.sidecar]


class PodNode:
    """Runs injected pods in network namespaces (see the module docstring)."""

    def __init__(
        self,
        cluster: KubeCluster,
        root: Path,
        images: Mapping[str, Sequence[str]],
        path_dirs: Sequence[str],
        node: str = NODE_NAME,
    ) -> None:
        self.cluster = cluster
        self.root = root
        self.images = dict(images)
        self.path_dirs = list(path_dirs)
        self.node = node
        self.subnet = free_subnet()
        self.bridge = f"rlbr{self.subnet}"
        self.bridge_ip = f"10.245.{self.subnet}.1"
        self._next_host = 10
        self.pods: dict[tuple[str, str], RunningPod] = {}
        self._lock = threading.Lock()
        self._mountpoints: list[Path] = []

    # ---- the node's network ---------------------------------------------------------------

    def setup(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{self.bridge_ip}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def teardown(self) -> None:
        for key in list(self.pods):
            self.stop_pod(*key, delete=False)
        _run("ip", "link", "del", self.bridge, check=False)
        for path in sorted(self._mountpoints, key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()  # only the empty mount points this node made
        with contextlib.suppress(OSError):
            KEEP_ASIDE.rmdir()  # empty once every pod's folder in it is gone

    # ---- pods -----------------------------------------------------------------------------

    def run_all(self, namespace: str, expected: int, selector: str = "",
                timeout: float = 90) -> dict[str, str]:
        """Wait for `expected` pods (made by their controllers), run each; name → IP."""
        def found() -> list[dict[str, Any]] | None:
            args = ["pods", "-n", namespace] + (["-l", selector] if selector else [])
            items = [p for p in self.cluster.get_json(*args)["items"]
                     if not p["metadata"].get("deletionTimestamp")]
            return items if len(items) >= expected else None

        pods = wait_for(found, timeout=timeout, interval=0.2, what=f"{expected} pods")
        return {p["metadata"]["name"]: self.start_pod(namespace, p["metadata"]["name"]).ip
                for p in pods}

    def start_pod(self, namespace: str, name: str) -> RunningPod:
        pod = self.cluster.get_json("pod", name, "-n", namespace)
        if not pod["spec"].get("nodeName"):
            self._bind(namespace, name)
            pod = self.cluster.get_json("pod", name, "-n", namespace)
        with self._lock:
            host = self._next_host
            self._next_host += 1
        netns = f"rl-{uuid.uuid4().hex[:8]}"
        running = RunningPod(
            namespace, name, netns, f"10.245.{self.subnet}.{host}", f"rlv{self.subnet}x{host}",
            self.root / "pods" / namespace / name, pod,
        )
        self.pods[(namespace, name)] = running
        self._network(running)
        self.refresh_hosts()
        self._volumes(running)
        self._write_status(running)
        for spec in pod["spec"].get("initContainers") or ():
            container = Container(spec["name"], spec, sidecar=spec.get("restartPolicy") == "Always")
            running.init.append(container)
            self._start(running, container)
            if container.sidecar:
                self._wait_started(running, container)
            else:
                code = container.proc.wait(timeout=INIT_TIMEOUT_S)  # type: ignore[union-attr]
                if code != 0:
                    running.phase = "Failed"
                    self._write_status(running)
                    raise AssertionError(
                        f"init container {container.name} of {namespace}/{name} exited {code}:\n"
                        + self.log(running, container.name))
        for spec in pod["spec"]["containers"]:
            container = Container(spec["name"], spec)
            running.apps.append(container)
            self._start(running, container)
        running.phase = "Running"
        self._write_status(running)
        running.monitor = threading.Thread(target=self._monitor, args=(running,), daemon=True)
        running.monitor.start()
        return running

    def wait_ready(self, namespace: str, name: str, timeout: float = 60) -> None:
        pod = self.pods[(namespace, name)]
        wait_for(lambda: pod.ready, timeout=timeout, interval=0.1,
                 what=f"{namespace}/{name} ready")

    def stop_pod(self, namespace: str, name: str, delete: bool = True) -> None:
        pod = self.pods.pop((namespace, name), None)
        if pod is not None:
            pod.stopping = True
            self._stop_containers(pod.apps)
            self._stop_containers(list(reversed(pod.sidecars)))
            self._cleanup(pod)
        if delete:
            self.cluster.kubectl("delete", "pod", name, "-n", namespace, "--grace-period=0",
                                 "--force", "--wait=false", "--ignore-not-found")

    def exec(self, namespace: str, name: str, *args: str,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run a command in the pod's network namespace as root (`kubectl exec`'s part)."""
        pod = self.pods[(namespace, name)]
        return subprocess.run(["ip", "netns", "exec", pod.netns, *args], capture_output=True,
                              text=True, timeout=timeout, check=False, env=self._base_env(pod))

    def spawn(self, namespace: str, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start a command in the pod's network namespace as root, in the background
        (stop it with `kill`; the pod's deletion kills whatever is left in it)."""
        pod = self.pods[(namespace, name)]
        logs = pod.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / "spawned.log", "ab") as out:
            return subprocess.Popen(["ip", "netns", "exec", pod.netns, *args], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self._base_env(pod), start_new_session=True)

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def _base_env(self, pod: RunningPod) -> dict[str, str]:
        return {"PATH": ":".join([*self.path_dirs, "/usr/sbin:/usr/bin:/sbin:/bin"]),
                "HOME": "/tmp", "HOSTNAME": pod.name}

    def log(self, pod: RunningPod, container: str) -> str:
        try:
            return (pod.root / "logs" / f"{container}.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # ---- the pieces -----------------------------------------------------------------------

    def _bind(self, namespace: str, name: str) -> None:
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": name, "namespace": namespace},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}}
        self.cluster.kubectl("create", "--raw",
                             f"/api/v1/namespaces/{namespace}/pods/{name}/binding",
                             "-f", "-", stdin=json.dumps(binding))

    def _network(self, pod: RunningPod) -> None:
        ns = pod.netns
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", pod.host_veth, "type", "veth", "peer", "name", "eth0",
             "netns", ns)
        _run("ip", "link", "set", pod.host_veth, "master", self.bridge, "up")
        inside = ["ip", "netns", "exec", ns]
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "addr", "add", f"{pod.ip}/24", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "ip", "route", "add", SERVICE_CIDR, "via", self.bridge_ip, "dev", "eth0")
        etc = Path("/etc/netns") / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(self._hosts(pod))
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def refresh_hosts(self) -> None:
        """Every pod's hosts file names every Service now (the cluster DNS's part)."""
        for pod in list(self.pods.values()):
            hosts = Path("/etc/netns") / pod.netns / "hosts"
            if hosts.exists():
                hosts.write_text(self._hosts(pod))  # same file: running programs see it

    def _hosts(self, pod: RunningPod) -> str:
        lines = ["127.0.0.1 localhost", f"{pod.ip} {pod.name}"]
        for svc in self.cluster.get_json("services", "-A")["items"]:
            ip = svc["spec"].get("clusterIP")
            if not ip or ip == "None":
                continue
            name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
            names = [f"{name}.{ns}.svc.cluster.local", f"{name}.{ns}.svc", f"{name}.{ns}"]
            if ns == pod.namespace:
                names.append(name)
            lines.append(f"{ip} {' '.join(names)}")
        return "\n".join(lines) + "\n"

    def _volumes(self, pod: RunningPod) -> None:
        spec, meta = pod.pod["spec"], pod.pod["metadata"]
        for volume in spec.get("volumes") or ():
            path = pod.root / "volumes" / volume["name"]
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)  # emptyDir: writable by any container's user
            sources = [volume, *((volume.get("projected") or {}).get("sources") or ())]
            for source in sources:
                if "configMap" in source:
                    self._config_map(pod, source["configMap"], path)
                token = source.get("serviceAccountToken")
                if token:
                    (path / token["path"]).write_text(self.cluster.token(
                        pod.namespace, spec.get("serviceAccountName") or "default",
                        audience=token.get("audience"),
                        seconds=max(600, int(token.get("expirationSeconds") or 3600))))
                for item in (source.get("downwardAPI") or {}).get("items") or ():
                    field_path = item["fieldRef"]["fieldPath"]
                    if field_path in ("metadata.labels", "metadata.annotations"):
                        values = meta.get(field_path.split(".")[-1]) or {}
                        text = "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
                    else:
                        text = self._field(pod, field_path)
                    (path / item["path"]).write_text(text)
            for child in path.iterdir():
                child.chmod(0o644)

    def _config_map(self, pod: RunningPod, source: Mapping[str, Any], path: Path) -> None:
        cm = self.cluster.get_json("configmap", source["name"], "-n", pod.namespace)
        data = cm.get("data") or {}
        items = source.get("items") or [{"key": k, "path": k} for k in data]
        for item in items:
            if item["key"] in data:
                (path / item["path"]).write_text(data[item["key"]])

    def _field(self, pod: RunningPod, path: str) -> str:
        values = {
            "metadata.name": pod.name, "metadata.namespace": pod.namespace,
            "status.podIP": pod.ip, "status.hostIP": self.bridge_ip,
            "spec.serviceAccountName": pod.pod["spec"].get("serviceAccountName") or "default",
            "spec.nodeName": self.node,
        }
        return values[path]

    def _command(self, pod: RunningPod, spec: Mapping[str, Any]) -> list[str]:
        command = list(spec.get("command") or ())
        if not command:
            image = str(spec.get("image") or "")
            if image not in self.images:
                raise AssertionError(f"{pod.namespace}/{pod.name}: no local image {image!r}")
            command = list(self.images[image])
        return command + list(spec.get("args") or ())

    def _start(self, pod: RunningPod, container: Container) -> None:
        spec = container.spec
        env = self._base_env(pod)
        for var in spec.get("env") or ():
            if "value" in var:
                env[var["name"]] = str(var["value"])
            elif "fieldRef" in (var.get("valueFrom") or {}):
                env[var["name"]] = self._field(pod, var["valueFrom"]["fieldRef"]["fieldPath"])
        script = ["set -e"]
        # A mount over a folder holding the pod's own files (an emptyDir on /tmp) last, or
        # it would hide the other volumes' sources.
        mounts = sorted(spec.get("volumeMounts") or (),
                        key=lambda m: pod.root.is_relative_to(m["mountPath"]))
        for index, mount in enumerate(mounts):
            target = Path(mount["mountPath"])
            self._mountpoint(target)
            source = pod.root / "volumes" / mount["name"]
            # A volume over a folder holding this checkout (an emptyDir on /tmp with the
            # repo cloned under /tmp) would hide the interpreter and the apps: keep them
            # visible, bound aside first and back on top after.
            kept = [k for k in KEPT_HOST_PATHS if k != target and k.is_relative_to(target)]
            aside = KEEP_ASIDE / pod.netns / f"{container.name}-{index}"
            for i, path in enumerate(kept):
                q, stage = shlex.quote(str(path)), shlex.quote(str(aside / str(i)))
                script += [f"mkdir -p {stage}", f"mount --bind {q} {stage}"]
            script.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(str(target))}")
            for i, path in enumerate(kept):
                q, stage = shlex.quote(str(path)), shlex.quote(str(aside / str(i)))
                script += [f"mkdir -p {q}", f"mount --bind {stage} {q}"]
        security = spec.get("securityContext") or {}
        uid = int(security.get("runAsUser") or 0)
        gid = int(security.get("runAsGroup") or uid)
        command = [shlex.quote(c) for c in self._command(pod, spec)]
        if uid:
            command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--",
                       *command]
        script.append("exec " + " ".join(command))
        logs = pod.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{container.name}.log", "ab") as out:
            container.proc = subprocess.Popen(
                ["ip", "netns", "exec", pod.netns, "sh", "-c", "\n".join(script)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd="/", start_new_session=True,
            )

    def _mountpoint(self, target: Path) -> None:
        missing = [p for p in [target, *target.parents] if not p.exists()]
        target.mkdir(parents=True, exist_ok=True)
        self._mountpoints += missing

    def _probe_url(self, pod: RunningPod, probe: Mapping[str, Any]) -> str:
        http = probe["httpGet"]
        return f"http://{pod.ip}:{http['port']}{http.get('path') or '/'}"

    def _wait_started(self, pod: RunningPod, container: Container) -> None:
        probe = container.spec.get("startupProbe")
        if not probe:
            return

        def started() -> bool:
            if container.exit_code is not None:
                raise AssertionError(f"{container.name} exited {container.exit_code}:\n"
                                     + self.log(pod, container.name))
            return http_ok(self._probe_url(pod, probe))

        wait_for(started, timeout=STARTUP_TIMEOUT_S, interval=0.1,
                 what=f"{pod.namespace}/{pod.name} {container.name} started")

    def _readiness(self, pod: RunningPod) -> bool:
        for container in [*pod.sidecars, *pod.apps]:
            if container.exit_code is not None:
                return False
            probe = container.spec.get("readinessProbe")
            if probe and "httpGet" in probe and not http_ok(self._probe_url(pod, probe)):
                return False
        return True

    def _monitor(self, pod: RunningPod) -> None:
        restarts = pod.pod["spec"].get("restartPolicy", "Always") != "Always"
        while not pod.stopping:
            if restarts and all(c.exit_code is not None for c in pod.apps):
                self._stop_containers(list(reversed(pod.sidecars)))
                failed = any(c.exit_code != 0 for c in pod.apps)
                pod.phase, pod.ready = ("Failed" if failed else "Succeeded"), False
                self._write_status(pod)
                return
            ready = self._readiness(pod)
            if ready != pod.ready and not pod.stopping:
                pod.ready = ready
                self._write_status(pod)
            time.sleep(MONITOR_INTERVAL_S)

    def _stop_containers(self, containers: Sequence[Container]) -> None:
        for container in containers:
            if container.proc is not None and container.proc.poll() is None:
                os.killpg(container.proc.pid, signal.SIGTERM)
        for container in containers:
            if container.proc is None:
                continue
            try:
                container.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(container.proc.pid, signal.SIGKILL)
                container.proc.wait(timeout=5)

    def _cleanup(self, pod: RunningPod) -> None:
        pids = _run("ip", "netns", "pids", pod.netns, check=False).stdout.split()
        for pid in pids:  # whatever a container left behind in the namespace, by PID
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run("ip", "netns", "del", pod.netns, check=False)
        _run("ip", "link", "del", pod.host_veth, check=False)
        shutil.rmtree(Path("/etc/netns") / pod.netns, ignore_errors=True)
        shutil.rmtree(KEEP_ASIDE / pod.netns, ignore_errors=True)  # empty on the host

    def _status(self, pod: RunningPod) -> dict[str, Any]:
        now = _now()
        flag = "True" if pod.ready else "False"

        def status(c: Container) -> dict[str, Any]:
            code = c.exit_code
            state: dict[str, Any] = (
                {"running": {"startedAt": now}} if code is None and c.proc is not None
                else {"terminated": {"exitCode": code or 0, "finishedAt": now,
                                     "startedAt": now}} if c.proc is not None
                else {"waiting": {"reason": "PodInitializing"}})
            return {"name": c.name, "image": str(c.spec.get("image") or ""), "imageID": "",
                    "ready": code is None and c.proc is not None and pod.ready,
                    "started": c.proc is not None, "restartCount": 0, "state": state}

        return {"status": {
            "phase": pod.phase, "hostIP": self.bridge_ip, "podIP": pod.ip,
            "podIPs": [{"ip": pod.ip}], "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True" if pod.apps else "False",
                 "lastTransitionTime": now},
                {"type": "ContainersReady", "status": flag, "lastTransitionTime": now},
                {"type": "Ready", "status": flag, "lastTransitionTime": now},
            ],
            "initContainerStatuses": [status(c) for c in pod.init],
            "containerStatuses": [status(c) for c in pod.apps],
        }}

    def _write_status(self, pod: RunningPod) -> None:
        self.cluster.kubectl("patch", "pod", pod.name, "-n", pod.namespace,
                             "--subresource=status", "--type=merge",
                             "-p", json.dumps(self._status(pod)), check=False)
