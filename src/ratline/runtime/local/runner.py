"""The local runner (`ratline up DIR`): a kubelet for one machine.

It starts the control plane as a child, reads Workload and Gateway resources through
the admin API, runs one sidecar + app per Workload replica and the gateways (`gateway_fleet`),
reports every instance to the registry, keeps `run.json` current, restarts what
crashes, and on SIGINT/SIGTERM stops apps, then sidecars, then the gateways, then the
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

from ratline.observability.agent_http import ProxyMetricsPorts
from ratline.registry.instances import WorkloadInstance
from ratline.runtime.local.addons import PrometheusAddon, find_prometheus
from ratline.runtime.local.cpchild import (
    CONTROLPLANE_MODULE,
    ControlPlaneChild,
    ControlPlaneFailed,
    ControlPlaneInfo,
)
from ratline.runtime.local.cpclient import AdminClient, ControlPlaneUnavailable
from ratline.runtime.local.gateway import LocalGateway
from ratline.runtime.local.gateway_fleet import FleetContext, GatewayFleet
from ratline.runtime.local.instances import AllocatedPorts, InstanceDirs, LocalInstance
from ratline.runtime.local.leftovers import (
    RecordedProcess,
    StartTimes,
    clean_up_after_dead_runner,
)
from ratline.runtime.local.nack_watch import NackWatch
from ratline.runtime.local.outbound import OutboundServicePort, outbound_service_ports
from ratline.runtime.local.ports import PortAllocator, PortInUse, check_free
from ratline.runtime.local.runfile import (
    MeshAlreadyRunning,
    live_runner_pid,
    read_run_file,
    remove_run_state,
    write_run_file,
)
from ratline.runtime.local.security import LocalSecurity, read_admin_token
from ratline.runtime.local.startup import ready_line
from ratline.runtime.local.supervisor import Backoff, RestartPolicy
from ratline.runtime.local.workloads import (
    WORKLOAD_KIND,
    InstanceKey,
    InstanceSpec,
    desired_instances,
    plan_reconcile,
)
from ratline.settings import (
    CONTROL_PLANE_LOG,
    Settings,
    logs_dir,
    state_dir,
)

log = logging.getLogger("ratline.runner")

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
        self.logs_dir = logs_dir(self.mesh_dir)
        self.dirs = InstanceDirs(self.mesh_dir, self.state_dir / "proxies", self.logs_dir)
        self.policy = RestartPolicy.from_settings(settings)
        self.allocator = PortAllocator(settings.bind_address)
        self.instances: dict[InstanceKey, LocalInstance] = {}
        self.metrics = ProxyMetricsPorts(settings.bind_address)
        """The agent's metrics port of every proxy (Istio's merged 15020)."""
        self.gateways = GatewayFleet(
            FleetContext(
                settings=settings,
                policy=self.policy,
                allocator=self.allocator,
                metrics=self.metrics,
                proxies_dir=self.dirs.proxies_dir,
                logs_dir=self.logs_dir,
                bootstrap_extra=self._bootstrap_extra,
                security=lambda: self.security,
                on_change=self.notify,
            )
        )
        """The built-in ingress gateway and every gateway Deployment's replicas."""
        self.prometheus: PrometheusAddon | None = None
        self.workload_errors: list[str] = []
        self.outbound_service_ports: list[OutboundServicePort] = []
        """Service ports every sidecar gets a local listener for (TCP, TLS, HTTP/2, gRPC)."""
        self.cp: ControlPlaneChild | None = None
        self.client: AdminClient | None = None
        self.security: LocalSecurity | None = None
        """Certificates and SDS for the proxies, when the control plane runs a CA."""
        self.started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.ready = False
        self._announced = False
        self._nack_watch = NackWatch(self._live_client)
        self._settle_deadline = 0.0
        self._synced = False
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._start_times = StartTimes()
        self._push_lock = asyncio.Lock()
        """Reports go one at a time, each with the state current when it is sent."""

    # -- lifecycle -------------------------------------------------------------------

    async def run(self) -> int:
        """Run the mesh until asked to stop; 0 on a clean stop, 1 if it could not start."""
        pid = live_runner_pid(self.mesh_dir)
        if pid is not None and pid != os.getpid():
            raise MeshAlreadyRunning(self.mesh_dir, pid)
        self._clean_up_previous_run()
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
        try:
            for setting in ("xds_port", "admin_port", "ca_port"):
                if getattr(self.settings, setting):
                    check_free(self.settings.bind_address, getattr(self.settings, setting),
                               f"RATLINE_{setting.upper()}")
        except PortInUse as exc:
            log.error("%s", exc)
            return 1
        xds_port = self._port(self.settings.xds_port)
        admin_port = self._port(self.settings.admin_port)
        binary = find_prometheus(self.settings)
        if binary is not None:
            self.prometheus = PrometheusAddon(binary, self.mesh_dir, self.settings, self.allocator)
        self.cp = ControlPlaneChild(
            mesh_dir=self.mesh_dir,
            xds_port=xds_port,
            admin_port=admin_port,
            ready_file=self.state_dir / "controlplane.json",
            log_path=self.logs_dir / CONTROL_PLANE_LOG,
            module=self.controlplane_module,
            prometheus_url=self.prometheus.url if self.prometheus is not None else "",
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
        await self.gateways.start_built_in(xds_port)
        if self.prometheus is not None:
            await self.prometheus.start(info.admin)
            self._write_run_file()
        self._spawn(self._report_loop(), "reporter")
        self._spawn(self._watch_loop(), "watcher")
        self._spawn(self._supervise_control_plane(), "control plane supervisor")
        self._spawn(self._nack_watch.run(), "NACK watch")
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
        envoys = [i.sidecar for i in instances] + [g.envoy for g in self.gateways.all()]
        await _gather_logged(e.drain() for e in envoys)
        if instances:
            log.info("stopping %d instances", len(instances))
        await _gather_logged(i.stop_app() for i in instances)
        await _gather_logged(i.stop_sidecar() for i in instances)
        await _gather_logged(g.envoy.stop() for g in self.gateways.all())
        await _gather_logged([self.metrics.close()])
        if self.prometheus is not None:
            await _gather_logged([self.prometheus.stop()])
        if self.security is not None:
            await _gather_logged([self.security.stop()])
        if self.cp is not None:
            await _gather_logged([self.cp.stop(CONTROL_PLANE_STOP_TIMEOUT_S)])
        if self.client is not None:
            await self.client.close()
        data = read_run_file(self.mesh_dir)
        if data is None or data.get("runner_pid") == os.getpid():
            remove_run_state(self.mesh_dir, data)
        log.info("mesh stopped")

    # -- gateways ---------------------------------------------------------------------

    async def _stop_gateways(self, gateways: list[LocalGateway]) -> None:
        """Out of the registry first, then drained and stopped."""
        await self._push_instances()
        await _gather_logged(g.envoy.drain() for g in gateways)
        await _gather_logged(g.envoy.stop() for g in gateways)

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
        workload_items = [r for r in resources if r.get("kind") == WORKLOAD_KIND]
        workloads = [r.get("resource") or {} for r in workload_items]
        sources = {
            (str(r.get("namespace")), str(r.get("name"))): str(r["file"])
            for r in workload_items
            if r.get("file")
        }
        documents = (r.get("resource") or {} for r in resources)
        self.outbound_service_ports = outbound_service_ports(documents)
        desired, errors = desired_instances(workloads, sources)
        if errors != self.workload_errors:
            for error in errors:
                log.error("%s", error)
            self.workload_errors = errors
        await self.gateways.reconcile(resources, self._stop_gateways)
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
            await self.metrics.remove(inst.ports.stats)
            self.allocator.release(inst.ports.all())
            self.allocator.release(inst.outbound.local_ports())
            if self.security is not None:
                await self.security.forget(inst.node_id)
        for inst in self.instances.values():
            _, released = inst.outbound.update(self.outbound_service_ports, self.allocator.allocate)
            self.allocator.release(released)
        new = [self._create_instance(spec) for spec in plan.start]
        for inst in new:
            await self.metrics.add(inst.ports.stats, self._admin(inst.ports.admin), inst.peer)
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
            stats=self.allocator.allocate(),
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

    def _admin(self, port: int) -> str:
        return f"{self.settings.bind_address}:{port}"

    def _bootstrap_extra(self) -> dict[str, Any]:
        return self.security.bootstrap_fields() if self.security is not None else {}

    def _live_client(self) -> AdminClient | None:
        """The admin client while the control plane is up."""
        up = self.cp is not None and self.cp.info is not None
        return self.client if up else None

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
        return [*reported, *self.gateways.workload_instances()]

    async def _report_loop(self) -> None:
        while True:
            await self._changed.wait()
            await asyncio.sleep(REPORT_COALESCE_S)
            self._changed.clear()
            self._update_ready()
            self._write_run_file()
            await self._announce_started()
            await self._push_instances()

    async def _push_instances(self) -> None:
        if self.client is None or self.cp is None or self.cp.info is None:
            return
        async with self._push_lock:
            try:
                await self.client.put_instances(self.reported_instances())
            except ControlPlaneUnavailable as exc:
                log.debug("report: %s", exc)

    async def _announce_started(self) -> None:
        """Once ready and every app listens (or failed, or `ready_timeout_s` passed): the
        last line of start-up, with the URLs to open (after any config already refused)."""
        if self._announced or not self.ready:
            return
        settled = all(i.healthy or i.error or i.finished for i in self.instances.values())
        if not settled and asyncio.get_running_loop().time() < self._settle_deadline:
            return
        self._announced = True
        await self._nack_watch.check()
        log.info("%s", ready_line(self.run_info()))

    def _update_ready(self) -> None:
        ingress = self.gateways.built_in
        if self.ready or not self._synced or ingress is None:
            return
        if not self.gateways.ready():
            return
        if not all(i.sidecar.ready.is_set() or i.finished for i in self.instances.values()):
            return
        self.ready = True
        loop = asyncio.get_running_loop()
        self._settle_deadline = loop.time() + self.settings.ready_timeout_s
        loop.call_later(self.settings.ready_timeout_s, self.notify)
        cp = self.cp.info if self.cp else None
        log.info(
            "mesh ready: %d instances, gateway admin %s:%d%s, control plane admin http://%s",
            len(self.instances),
            self.settings.bind_address,
            ingress.admin_port,
            f", listening on {ingress.listen}" if ingress.listen else "",
            cp.admin if cp else "-",
        )

    def run_info(self) -> dict[str, Any]:
        cp = self.cp.info if self.cp is not None else None
        gateways = self.gateways.run_info()
        return {
            "runner_pid": os.getpid(),
            "mesh_dir": str(self.mesh_dir),
            "bind_address": self.settings.bind_address,
            "started_at": self.started_at,
            "ready": self.ready,
            "control_plane": cp.to_json() if cp is not None else None,
            "gateways": gateways,
            "instances": [self.instances[key].run_info() for key in sorted(self.instances)],
            "errors": list(self.workload_errors),
            "processes": [r.to_json() for r in self._processes(cp)],
            "sds_socket": str(self.security.socket_path) if self.security is not None else None,
            "addons": {"prometheus": self.prometheus.run_info()} if self.prometheus else {},
        }

    def _processes(self, cp: ControlPlaneInfo | None) -> list[RecordedProcess]:
        """Every process this runner started that is running, with its start time: what
        a later `ratline up` stops if this runner dies without doing it."""
        wanted: list[tuple[int | None, str]] = [(os.getpid(), "runner")]
        if cp is not None:
            wanted.append((cp.pid, "control plane"))
        wanted.extend(self.gateways.processes())
        for key in sorted(self.instances):
            inst = self.instances[key]
            wanted.append((inst.sidecar.pid, f"sidecar {inst.name}"))
            wanted.append((inst.app_pid, f"app {inst.name}"))
        if self.prometheus is not None and self.prometheus.process is not None:
            wanted.append((self.prometheus.process.pid, "prometheus add-on"))
        records = [self._start_times.record(pid, role) for pid, role in wanted]
        self._start_times.forget_others(pid for pid, _ in wanted if pid)
        return [r for r in records if r is not None]

    def _write_run_file(self) -> None:
        write_run_file(self.mesh_dir, self.run_info())

    def _clean_up_previous_run(self) -> None:
        """Stop what a runner of this mesh that died left running (LeftoverProcesses if
        some of it cannot be told to be its own)."""
        stale = read_run_file(self.mesh_dir)
        if not stale or stale.get("runner_pid") == os.getpid():
            return
        stopped = clean_up_after_dead_runner(self.mesh_dir, stale)
        if stopped:
            log.warning(
                "the previous runner (PID %s) died without stopping what it started; "
                "stopped %s",
                stale.get("runner_pid"),
                ", ".join(r.describe() for r in stopped),
            )


async def _gather_logged(coros: Iterable[Coroutine[Any, Any, Any]]) -> None:
    results = await asyncio.gather(*coros, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.error("while stopping: %r", result)


def run_mesh(mesh_dir: Path, settings: Settings) -> int:
    """Run a mesh in the foreground until SIGINT/SIGTERM (raises MeshAlreadyRunning)."""
    return asyncio.run(Runner(mesh_dir, settings).run())
