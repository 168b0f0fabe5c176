"""The local runner (`ratline up DIR`): a kubelet for one machine.

It starts the control plane as a child, reads Workload and Gateway resources through
the admin API, runs one sidecar + app per Workload replica and the ingress gateway,
reports every instance to the registry, keeps `run.json` current, restarts what
crashes, and on SIGINT/SIGTERM stops apps, then sidecars, then the gateway, then the
control plane. The decisions (what to start or stop) are the pure functions of
`workloads`; this module only wires them to processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ratline.agent.bootstrap import BootstrapParams
from ratline.agent.process import pid_alive
from ratline.registry.instances import ProxyKind, SidecarPorts, WorkloadInstance, node_id
from ratline.runtime.local.cpchild import (
    CONTROLPLANE_MODULE,
    ControlPlaneChild,
    ControlPlaneFailed,
    ControlPlaneInfo,
)
from ratline.runtime.local.cpclient import AdminClient, ControlPlaneUnavailable
from ratline.runtime.local.instances import AllocatedPorts, InstanceDirs, LocalInstance
from ratline.runtime.local.outbound import OutboundServicePort, outbound_service_ports
from ratline.runtime.local.ports import PortAllocator
from ratline.runtime.local.proxies import SupervisedEnvoy
from ratline.runtime.local.runfile import (
    MeshAlreadyRunning,
    live_runner_pid,
    pids_in_run_info,
    read_run_file,
    remove_run_file,
    write_run_file,
)
from ratline.runtime.local.security import LocalSecurity, read_admin_token
from ratline.runtime.local.supervisor import Backoff, RestartPolicy
from ratline.runtime.local.workloads import (
    GATEWAY_KIND,
    WORKLOAD_KIND,
    InstanceKey,
    InstanceSpec,
    desired_instances,
    gateway_listen_ports,
    plan_reconcile,
)
from ratline.settings import Settings, state_dir

log = logging.getLogger("ratline.runner")

GATEWAY_NAME = "istio-ingressgateway"
GATEWAY_INSTANCE = f"{GATEWAY_NAME}-0"
GATEWAY_NAMESPACE = "istio-system"
GATEWAY_LABELS = {"istio": "ingressgateway", "app": GATEWAY_NAME}
WATCH_TIMEOUT_S = 30.0
WATCH_RETRY_S = 0.5
REPORT_COALESCE_S = 0.02
CONTROL_PLANE_STOP_TIMEOUT_S = 5.0
REMOVAL_QUIET_S = 0.5
"""A removed instance's sidecar serves until no request reached it for this long: the
time for every other proxy to apply the endpoint removal."""


def configure_logging(stream: TextIO | None = None) -> None:
    """Short timestamped lines for the runner's events on `stream` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S"))
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)
    log.propagate = False


class Runner:
    """One running mesh; `await run()` until SIGINT/SIGTERM or `request_stop()`."""

    def __init__(
        self, mesh_dir: Path, settings: Settings, *, controlplane_module: str = CONTROLPLANE_MODULE
    ) -> None:
        self.mesh_dir = mesh_dir.resolve()
        self.controlplane_module = controlplane_module
        self.settings = settings
        self.state_dir = state_dir(self.mesh_dir)
        self.logs_dir = self.state_dir / "logs"
        self.dirs = InstanceDirs(self.mesh_dir, self.state_dir / "proxies", self.logs_dir)
        self.policy = RestartPolicy.from_settings(settings)
        self.allocator = PortAllocator(settings.bind_address)
        self.instances: dict[InstanceKey, LocalInstance] = {}
        self.gateway: SupervisedEnvoy | None = None
        self.gateway_admin_port = 0
        self.gateway_listen: list[int] = []
        self.workload_errors: list[str] = []
        self.outbound_service_ports: list[OutboundServicePort] = []
        """Service ports every sidecar gets a local listener for (TCP, TLS, HTTP/2, gRPC)."""
        self.cp: ControlPlaneChild | None = None
        self.client: AdminClient | None = None
        self.security: LocalSecurity | None = None
        """Certificates and SDS for the proxies, when the control plane runs a CA."""
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.ready = False
        self._synced = False
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._push_lock = asyncio.Lock()
        """Reports go one at a time, each with the state current when it is sent."""

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> int:
        """Run the mesh until asked to stop; 0 on a clean stop, 1 if it could not start."""
        pid = live_runner_pid(self.mesh_dir)
        if pid is not None and pid != os.getpid():
            raise MeshAlreadyRunning(self.mesh_dir, pid)
        self._warn_stale_run_file()
        for d in (self.logs_dir, self.dirs.proxies_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._write_run_file()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)
        main = asyncio.create_task(self._start(), name="runner start")
        stop = asyncio.create_task(self._stop.wait(), name="runner stop")
        code = 0
        try:
            await asyncio.wait({main, stop}, return_when=asyncio.FIRST_COMPLETED)
            if main.done() and not main.cancelled() and main.exception() is None:
                code = main.result()
                if code == 0:
                    await stop
            elif main.done() and not main.cancelled():
                log.error("runner failed: %r", main.exception())
                code = 1
        finally:
            for task in (main, stop):
                task.cancel()
            with contextlib.suppress(BaseException):
                await main
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        return code

    def request_stop(self) -> None:
        if not self._stop.is_set():
            log.info("stopping the mesh")
        self._stop.set()

    async def _start(self) -> int:
        xds_port = self._port(self.settings.xds_port)
        admin_port = self._port(self.settings.admin_port)
        self.cp = ControlPlaneChild(
            mesh_dir=self.mesh_dir,
            xds_port=xds_port,
            admin_port=admin_port,
            ready_file=self.state_dir / "controlplane.json",
            log_path=self.logs_dir / "controlplane.log",
            module=self.controlplane_module,
        )
        try:
            info = await self.cp.start(strict=True, timeout_s=self.settings.ready_timeout_s)
        except ControlPlaneFailed as exc:
            log.error("%s", exc)
            return 1
        self._log_control_plane(info, "ready")
        self.client = AdminClient(f"http://{info.admin}", read_admin_token(self.mesh_dir))
        if info.ca:
            self.security = LocalSecurity(
                self.mesh_dir, self.settings, self._ca_address, info.xds_tls
            )
            await self.security.start()
        self._write_run_file()
        self._start_gateway(xds_port)
        self._spawn(self._report_loop(), "reporter")
        self._spawn(self._watch_loop(), "watcher")
        self._spawn(self._supervise_control_plane(), "control plane supervisor")
        return 0

    def _port(self, configured: int) -> int:
        if configured:
            self.allocator.reserve(configured)
            return configured
        return self.allocator.allocate()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks.append(task)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("internal error in %s: %r", task.get_name(), task.exception())
            self.request_stop()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        instances = list(self.instances.values())
        # Drain first: every Envoy lets its in-flight requests finish before any app stops.
        envoys = [i.sidecar for i in instances]
        if self.gateway is not None:
            envoys.append(self.gateway)
        await _gather_logged(e.drain() for e in envoys)
        if instances:
            log.info("stopping %d instances", len(instances))
        await _gather_logged(i.stop_app() for i in instances)
        await _gather_logged(i.stop_sidecar() for i in instances)
        if self.gateway is not None:
            await _gather_logged([self.gateway.stop()])
        if self.security is not None:
            await _gather_logged([self.security.stop()])
        if self.cp is not None:
            await _gather_logged([self.cp.stop(CONTROL_PLANE_STOP_TIMEOUT_S)])
        if self.client is not None:
            await self.client.close()
        data = read_run_file(self.mesh_dir)
        if data is None or data.get("runner_pid") == os.getpid():
            remove_run_file(self.mesh_dir)
        log.info("mesh stopped")

    # -- the ingress gateway ----------------------------------------------------------

    def _start_gateway(self, xds_port: int) -> None:
        self.gateway_admin_port = self.allocator.allocate()
        gateway_node = node_id(ProxyKind.ROUTER, "127.0.0.1", GATEWAY_INSTANCE, GATEWAY_NAMESPACE)
        params = BootstrapParams(
            node_id=gateway_node,
            cluster=f"{GATEWAY_NAME}.{GATEWAY_NAMESPACE}",
            xds_host=self.settings.bind_address,
            xds_port=xds_port,
            admin_port=self.gateway_admin_port,
            delta=self.settings.delta_xds,
            metadata={"NAMESPACE": GATEWAY_NAMESPACE, "WORKLOAD_NAME": GATEWAY_NAME},
            **self._bootstrap_extra(),
        )
        if self.security is not None:
            self.security.enroll(
                gateway_node, GATEWAY_NAMESPACE, f"{GATEWAY_NAME}-service-account",
                GATEWAY_INSTANCE,
            )
        self.gateway = SupervisedEnvoy(
            label=GATEWAY_INSTANCE,
            params=params,
            config_path=self.dirs.proxies_dir / f"{gateway_node}.json",
            log_path=self.logs_dir / f"{GATEWAY_INSTANCE}.envoy.log",
            settings=self.settings,
            policy=self.policy,
            on_change=self.notify,
        )
        self.gateway.start()

    def gateway_instance(self) -> WorkloadInstance | None:
        if self.gateway is None:
            return None
        return WorkloadInstance(
            name=GATEWAY_INSTANCE,
            namespace=GATEWAY_NAMESPACE,
            workload=GATEWAY_NAME,
            labels=dict(GATEWAY_LABELS),
            service_account=f"{GATEWAY_NAME}-service-account",
            sidecar=SidecarPorts(outbound_port=0, admin_port=self.gateway_admin_port),
            kind=ProxyKind.ROUTER,
            healthy=self.gateway.ready.is_set(),
            proxy_pid=self.gateway.pid,
        )

    # -- watching Workloads and reconciling -------------------------------------------

    async def _watch_loop(self) -> None:
        version: str | None = None
        while True:
            assert self.client is not None
            try:
                data = await self.client.resources(wait=version, timeout_s=WATCH_TIMEOUT_S)
            except ControlPlaneUnavailable as exc:
                log.debug("watch: %s", exc)
                version = None
                await asyncio.sleep(WATCH_RETRY_S)
                continue
            new_version = str(data.get("config_version", ""))
            if version is not None and new_version == version:
                continue
            version = new_version
            await self._reconcile(data.get("resources") or [])

    async def _reconcile(self, resources: list[dict[str, Any]]) -> None:
        workloads = [r.get("resource") or {} for r in resources if r.get("kind") == WORKLOAD_KIND]
        gateways = [r.get("resource") or {} for r in resources if r.get("kind") == GATEWAY_KIND]
        documents = (r.get("resource") or {} for r in resources)
        self.outbound_service_ports = outbound_service_ports(documents)
        desired, errors = desired_instances(workloads)
        if errors != self.workload_errors:
            for error in errors:
                log.error("%s", error)
            self.workload_errors = errors
        listen = gateway_listen_ports(gateways, GATEWAY_LABELS, self.settings.gateway_port_offset)
        for port in listen:
            # Never hand a gateway's port to an app or a sidecar.
            self.allocator.reserve(port)
        if listen != self.gateway_listen:
            self.gateway_listen = listen
            if listen:
                ports = ", ".join(f"{self.settings.bind_address}:{p}" for p in listen)
                log.info("gateway %s listening on %s", GATEWAY_INSTANCE, ports)
        running = {key: inst.spec for key, inst in self.instances.items()}
        plan = plan_reconcile(running, desired)
        stopping = [self.instances.pop(key) for key in plan.stop]
        for inst in stopping:
            log.info("%s: stopping (Workload changed or removed)", inst.name)
        if stopping:
            # Out of the load-balancing set first, then drained and stopped.
            await self._push_instances()
        await _gather_logged(inst.stop(quiet_s=REMOVAL_QUIET_S) for inst in stopping)
        for inst in stopping:
            self.allocator.release(inst.ports.all())
            self.allocator.release(inst.outbound.local_ports())
            if self.security is not None:
                await self.security.forget(inst.node_id)
        for inst in self.instances.values():
            _, released = inst.outbound.update(self.outbound_service_ports, self.allocator.allocate)
            self.allocator.release(released)
        new = [self._create_instance(spec) for spec in plan.start]
        self._synced = True
        # Report before starting: a sidecar only becomes ready once the control plane
        # knows its instance and has sent it config.
        await self._push_instances()
        for inst in new:
            inst.start()
        self.notify()

    def _create_instance(self, spec: InstanceSpec) -> LocalInstance:
        count = len(spec.workload.ports)
        ports = AllocatedPorts(
            app=tuple(self.allocator.allocate_many(count)),
            inbound=tuple(self.allocator.allocate_many(count)),
            outbound=self.allocator.allocate(),
            admin=self.allocator.allocate(),
        )
        assert self.cp is not None
        inst = LocalInstance(
            spec,
            ports,
            dirs=self.dirs,
            xds=(self.settings.bind_address, self.cp.xds_port),
            settings=self.settings,
            policy=self.policy,
            on_change=self.notify,
            bootstrap_extra=self._bootstrap_extra(),
        )
        if self.security is not None:
            self.security.enroll(
                inst.node_id, spec.namespace, spec.workload.service_account, spec.name
            )
        inst.outbound.update(self.outbound_service_ports, self.allocator.allocate)
        self.instances[spec.key] = inst
        return inst

    def _bootstrap_extra(self) -> dict[str, Any]:
        return self.security.bootstrap_fields() if self.security is not None else {}

    def _ca_address(self) -> str | None:
        info = self.cp.info if self.cp is not None else None
        return info.ca if info is not None and info.ca else None

    # -- the control plane ------------------------------------------------------------

    async def _supervise_control_plane(self) -> None:
        assert self.cp is not None
        backoff = Backoff(self.policy)
        while True:
            code = await self.cp.wait()
            uptime = self.cp.process.uptime() if self.cp.process else 0.0
            delay = backoff.on_exit(uptime)
            log.warning("control plane exited with code %d; restart in %.1fs", code, delay)
            self.cp.info = None
            self.notify()
            while True:
                await asyncio.sleep(delay)
                try:
                    info = await self.cp.start(
                        strict=False, timeout_s=self.settings.ready_timeout_s
                    )
                except ControlPlaneFailed as exc:
                    delay = backoff.on_exit(0.0)
                    log.error("%s\nretrying in %.1fs", exc, delay)
                    continue
                break
            self._log_control_plane(info, "restarted")
            self.notify()

    def _log_control_plane(self, info: ControlPlaneInfo, what: str) -> None:
        log.info(
            "control plane %s (pid %d): xDS %s, admin http://%s",
            what,
            info.pid,
            info.xds,
            info.admin,
        )
        for error in info.errors:
            log.warning("control plane refused: %s", error)

    # -- reporting: registry and run.json ---------------------------------------------

    def notify(self) -> None:
        """Something changed: report instances and rewrite run.json soon."""
        self._changed.set()

    def reported_instances(self) -> list[WorkloadInstance]:
        reported = [inst.to_workload_instance() for inst in self.instances.values()]
        gateway = self.gateway_instance()
        return [*reported, gateway] if gateway is not None else reported

    async def _report_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(REPORT_COALESCE_S)
            self._changed.clear()
            self._update_ready()
            self._write_run_file()
            await self._push_instances()

    async def _push_instances(self) -> None:
        if self.client is None or self.cp is None or self.cp.info is None:
            return
        async with self._push_lock:
            try:
                await self.client.put_instances(self.reported_instances())
            except ControlPlaneUnavailable as exc:
                log.debug("report: %s", exc)

    def _update_ready(self) -> None:
        if self.ready or not self._synced or self.gateway is None:
            return
        if not self.gateway.ready.is_set():
            return
        if not all(i.sidecar.ready.is_set() or i.finished for i in self.instances.values()):
            return
        self.ready = True
        cp = self.cp.info if self.cp else None
        log.info(
            "mesh ready: %d instances, gateway admin %s:%d%s, control plane admin http://%s",
            len(self.instances),
            self.settings.bind_address,
            self.gateway_admin_port,
            f", listening on {self.gateway_listen}" if self.gateway_listen else "",
            cp.admin if cp else "-",
        )

    def run_info(self) -> dict[str, Any]:
        cp = self.cp.info if self.cp is not None else None
        gateways = []
        if self.gateway is not None:
            gateways.append(
                {
                    "name": GATEWAY_INSTANCE,
                    "namespace": GATEWAY_NAMESPACE,
                    "admin_port": self.gateway_admin_port,
                    "pid": self.gateway.pid,
                    "listen": list(self.gateway_listen),
                    "ready": self.gateway.ready.is_set(),
                    "restarts": self.gateway.restarts,
                    "error": self.gateway.error,
                    "log": str(self.gateway.log_path),
                }
            )
        return {
            "runner_pid": os.getpid(),
            "mesh_dir": str(self.mesh_dir),
            "started_at": self.started_at,
            "ready": self.ready,
            "control_plane": cp.to_json() if cp is not None else None,
            "gateways": gateways,
            "instances": [self.instances[key].run_info() for key in sorted(self.instances)],
            "errors": list(self.workload_errors),
        }

    def _write_run_file(self) -> None:
        write_run_file(self.mesh_dir, self.run_info())

    def _warn_stale_run_file(self) -> None:
        stale = read_run_file(self.mesh_dir)
        if not stale:
            return
        alive = [p for p in pids_in_run_info(stale) if pid_alive(p)]
        if alive:
            log.warning(
                "a previous runner died without cleaning up; processes it named may still "
                "run: PIDs %s",
                ", ".join(map(str, alive)),
            )


async def _gather_logged(coros: Iterable[Coroutine[Any, Any, Any]]) -> None:
    results = await asyncio.gather(*coros, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.error("while stopping: %r", result)


def run_mesh(mesh_dir: Path, settings: Settings) -> int:
    """Run a mesh in the foreground until SIGINT/SIGTERM (raises MeshAlreadyRunning)."""
    return asyncio.run(Runner(mesh_dir, settings).run())
