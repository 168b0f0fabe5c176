"""One Workload instance: its sidecar Envoy first, then its app once the sidecar is ready.

Istio's `holdApplicationUntilProxyStarts`: the app starts only when its sidecar is LIVE,
so its first outbound call already goes through a configured proxy. Both processes are
restarted with backoff when they crash; the app keeps running while its sidecar restarts
(on the same ports). A missing command is reported as the instance's error, not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ratline.agent.bootstrap import BootstrapParams
from ratline.agent.process import ChildProcess
from ratline.observability.peer_metadata import PeerMetadata, canonical_service
from ratline.registry.instances import (
    InstancePort,
    ProxyKind,
    SidecarPorts,
    WorkloadInstance,
    node_id,
)
from ratline.runtime.local.outbound import OutboundPorts
from ratline.runtime.local.proxies import SupervisedEnvoy
from ratline.runtime.local.supervisor import Backoff, RestartPolicy, should_restart
from ratline.runtime.local.workloads import InstanceSpec
from ratline.settings import Settings, instance_log_name

log = logging.getLogger("ratline.runner")

APP_STOP_TIMEOUT_S = 5.0
APP_PORT_POLL_S = 0.05


class CommandNotFound(Exception):
    """The Workload's command cannot be run; the message says what is missing."""


@dataclass(frozen=True)
class AllocatedPorts:
    """Ports handed to one instance: per container port an app and an inbound port."""

    app: tuple[int, ...]
    inbound: tuple[int, ...]
    outbound: int
    admin: int
    stats: int = 0
    """The agent's metrics port for this proxy (`/stats/prometheus`)."""

    def all(self) -> list[int]:
        stats = [self.stats] if self.stats else []
        return [*self.app, *self.inbound, self.outbound, self.admin, *stats]


@dataclass(frozen=True)
class InstanceDirs:
    mesh_dir: Path
    proxies_dir: Path
    logs_dir: Path


def resolve_command(command: tuple[str, ...], mesh_dir: Path) -> list[str]:
    """`command[0]` relative to the mesh dir if it exists there, else found on PATH."""
    if not command:
        raise CommandNotFound("spec.command: empty")
    first = command[0]
    path = Path(first)
    if path.is_absolute():
        if not path.is_file():
            raise CommandNotFound(f"spec.command[0]: command not found: {first} (no such file)")
        return list(command)
    local = mesh_dir / path
    if local.is_file():
        return [str(local), *command[1:]]
    found = shutil.which(first)
    if found is None:
        raise CommandNotFound(
            f"spec.command[0]: command not found: {first!r} (neither a file in {mesh_dir} "
            "nor a program on PATH)"
        )
    return [found, *command[1:]]


def port_env_name(port_name: str) -> str:
    """`PORT_HTTP_METRICS` for a port named `http-metrics`."""
    cleaned = "".join(c if c.isalnum() else "_" for c in port_name.upper())
    return f"PORT_{cleaned}"


def app_environment(
    spec: InstanceSpec,
    ports: AllocatedPorts,
    base_env: Mapping[str, str],
    services: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The app's environment: parent env, the services' variables (`outbound`), the
    Workload's env, then Ratline's variables."""
    env = {**base_env, **(services or {}), **spec.workload.env_map}
    if ports.app:
        env["PORT"] = str(ports.app[0])
    for container_port, app_port in zip(spec.workload.ports, ports.app, strict=True):
        if container_port.name:
            env[port_env_name(container_port.name)] = str(app_port)
    proxy = f"http://127.0.0.1:{ports.outbound}"
    env.update(
        HTTP_PROXY=proxy,
        http_proxy=proxy,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        RATLINE_INSTANCE=spec.name,
        RATLINE_NAMESPACE=spec.namespace,
        RATLINE_SERVICE_ACCOUNT=spec.workload.service_account,
    )
    return env


async def _port_accepts(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class LocalInstance:
    """A running replica: sidecar + app, with their state for reports and run.json."""

    def __init__(
        self,
        spec: InstanceSpec,
        ports: AllocatedPorts,
        *,
        dirs: InstanceDirs,
        xds: tuple[str, int],
        settings: Settings,
        policy: RestartPolicy,
        on_change: Callable[[], None],
        bootstrap_extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.ports = ports
        self.dirs = dirs
        self.settings = settings
        self.on_change = on_change
        self.app_backoff = Backoff(policy)
        self.app: ChildProcess | None = None
        self.app_listening = False
        self.app_error: str | None = None
        self.exit_code: int | None = None
        """Set when the app exited and its restartPolicy says it stays down (a finished job)."""
        self.node_id = node_id(ProxyKind.SIDECAR, "127.0.0.1", spec.name, spec.namespace)
        self.log_path = dirs.logs_dir / instance_log_name(spec.name, "app", spec.namespace)
        params = BootstrapParams(
            node_id=self.node_id,
            # Istio's service cluster: the canonical service (also Zipkin's service name)
            cluster=f"{canonical_service(spec.workload.label_map, spec.workload.name)}"
            f".{spec.namespace}",
            xds_host=xds[0],
            xds_port=xds[1],
            admin_port=ports.admin,
            delta=settings.delta_xds,
            metadata={"NAMESPACE": spec.namespace, "WORKLOAD_NAME": spec.workload.name},
            **dict(bootstrap_extra or {}),
        )
        self.sidecar = SupervisedEnvoy(
            label=spec.name,
            params=params,
            config_path=dirs.proxies_dir / f"{self.node_id}.json",
            log_path=dirs.logs_dir / instance_log_name(spec.name, "envoy", spec.namespace),
            access_log_path=dirs.logs_dir / instance_log_name(spec.name, "access", spec.namespace),
            settings=settings,
            policy=policy,
            on_change=on_change,
        )
        self._app_task: asyncio.Task[None] | None = None
        self.outbound = OutboundPorts()
        """The sidecar's local ports for the TCP, TLS, HTTP/2 and gRPC service ports."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def peer(self) -> PeerMetadata:
        """Who this instance is to its peers (its proxy's node metadata)."""
        workload = self.spec.workload
        return PeerMetadata(
            self.name, self.spec.namespace, workload.name, workload.label_map,
            workload.service_account,
        )

    @property
    def app_pid(self) -> int | None:
        return self.app.pid if self.app is not None and self.app.running else None

    @property
    def error(self) -> str | None:
        return self.app_error or self.sidecar.error

    @property
    def healthy(self) -> bool:
        return (
            self.sidecar.ready.is_set()
            and self.app_pid is not None
            and self.app_listening
            and self.app_error is None
        )

    @property
    def finished(self) -> bool:
        """The app exited for good (restartPolicy), and its sidecar was stopped with it."""
        return self.exit_code is not None

    @property
    def phase(self) -> str:
        """Kubernetes' pod phase: Pending, Running, Succeeded or Failed. As a pod's, it is
        Succeeded or Failed only once every container ended: the app, then its sidecar."""
        if self.exit_code is not None:
            if self.sidecar.pid is not None:
                return "Running"  # the app ended; its sidecar is draining
            return "Succeeded" if self.exit_code == 0 else "Failed"
        if self.app_error is not None:
            return "Failed"
        return "Running" if self.app_pid is not None else "Pending"

    @property
    def restarts(self) -> int:
        return self.app_backoff.restarts + self.sidecar.restarts

    def start(self) -> None:
        """Start the sidecar; the app follows once the sidecar is ready."""
        self.sidecar.start()
        if self._app_task is None:
            self._app_task = asyncio.create_task(self._run_app(), name=f"app {self.name}")

    async def _run_app(self) -> None:
        workload = self.spec.workload
        cwd = self.dirs.mesh_dir / (workload.working_dir or ".")
        while True:
            await self.sidecar.ready.wait()
            try:
                if not cwd.is_dir():
                    raise CommandNotFound(f"spec.workingDir: {cwd} is not a directory")
                args = resolve_command(workload.command, self.dirs.mesh_dir)
            except CommandNotFound as exc:
                self._fail(f"{workload.describe()}: {exc}")
                return
            services = self.outbound.environment(self.spec.namespace, self.settings.bind_address)
            env = app_environment(self.spec, self.ports, os.environ, services)
            app = ChildProcess(args, log_path=self.log_path, cwd=cwd, env=env)
            self.app = app
            self.app_listening = False
            try:
                pid = await app.start()
            except OSError as exc:
                self._fail(f"cannot start {args[0]}: {exc}")
                return
            self.app_error = None
            ports = ", ".join(
                f"{c.container_port}→app {a} inbound {i}"
                for c, a, i in zip(workload.ports, self.ports.app, self.ports.inbound, strict=True)
            )
            log.info(
                "%s: app started (pid %d%s; proxy %d, admin %d)",
                self.name,
                pid,
                f"; {ports}" if ports else "",
                self.ports.outbound,
                self.ports.admin,
            )
            self.on_change()
            listening = asyncio.create_task(self._wait_listening(app))
            code = await app.wait()
            listening.cancel()
            self.app_listening = False
            if not should_restart(workload.restart_policy, code):
                await self._finish(pid, code, app)
                return
            delay = self.app_backoff.on_exit(app.uptime())
            log.warning(
                "%s: app (pid %d) exited with code %d; restart in %.1fs; last log lines:\n%s",
                self.name,
                pid,
                code,
                delay,
                app.log_tail(10),
            )
            self.on_change()
            await asyncio.sleep(delay)

    async def _finish(self, pid: int, code: int, app: ChildProcess) -> None:
        """The app exited and stays down: its sidecar drains and stops too (a job's end)."""
        self.exit_code = code
        log.info(
            "%s: app (pid %d) exited with code %d; restartPolicy %s: not restarted, "
            "stopping its sidecar%s",
            self.name,
            pid,
            code,
            self.spec.workload.restart_policy,
            "" if code == 0 else f"; last log lines:\n{app.log_tail(10)}",
        )
        self.on_change()
        await self.sidecar.drain()
        await self.sidecar.stop()
        self.on_change()

    async def _wait_listening(self, app: ChildProcess) -> None:
        deadline = time.monotonic() + self.settings.ready_timeout_s
        warned = False
        for port in self.ports.app:
            while not await _port_accepts("127.0.0.1", port):
                if not warned and time.monotonic() > deadline:
                    warned = True
                    log.warning(
                        "%s: app (pid %s) is not listening on PORT %d after %gs",
                        self.name,
                        app.pid,
                        port,
                        self.settings.ready_timeout_s,
                    )
                await asyncio.sleep(APP_PORT_POLL_S)
        self.app_listening = True
        log.info("%s: app listening", self.name)
        self.on_change()

    def _fail(self, message: str) -> None:
        self.app_error = message
        log.error("%s: %s", self.name, message)
        self.on_change()

    async def stop_app(self, timeout_s: float = APP_STOP_TIMEOUT_S) -> None:
        if self._app_task is not None:
            self._app_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._app_task
        if self.app is not None:
            await self.app.stop(timeout_s)
        self.app_listening = False

    async def stop_sidecar(self) -> None:
        await self.sidecar.stop()

    async def stop(self, quiet_s: float = 0.0) -> None:
        """Sidecar drains (in-flight requests finish, then `quiet_s` without new ones),
        then the app stops, then the sidecar."""
        await self.sidecar.drain(quiet_s=quiet_s)
        await self.stop_app()
        await self.stop_sidecar()

    def to_workload_instance(self) -> WorkloadInstance:
        workload = self.spec.workload
        return WorkloadInstance(
            name=self.name,
            namespace=self.spec.namespace,
            workload=workload.name,
            labels=workload.label_map,
            service_account=workload.service_account,
            ports=tuple(
                InstancePort(
                    container_port=c.container_port,
                    app_port=a,
                    inbound_port=i,
                    name=c.name,
                    protocol=c.protocol,
                )
                for c, a, i in zip(workload.ports, self.ports.app, self.ports.inbound, strict=True)
            ),
            sidecar=SidecarPorts(
                outbound_port=self.ports.outbound,
                admin_port=self.ports.admin,
                stats_port=self.ports.stats,
                outbound=self.outbound.reported(),
            ),
            kind=ProxyKind.SIDECAR,
            healthy=self.healthy,
            app_pid=self.app_pid,
            proxy_pid=self.sidecar.pid,
        )

    def run_info(self) -> dict[str, Any]:
        """This instance's entry in run.json."""
        data = self.to_workload_instance().to_json()
        return {
            "name": data["name"],
            "namespace": data["namespace"],
            "workload": data["workload"],
            "node": self.node_id,
            "app_pid": data["app_pid"],
            "proxy_pid": data["proxy_pid"],
            "ports": data["ports"],
            "sidecar": data["sidecar"],
            "sidecar_ready": self.sidecar.ready.is_set(),
            "healthy": data["healthy"],
            "restarts": self.restarts,
            "phase": self.phase,
            "exit_code": self.exit_code,
            "error": self.error,
            "log": str(self.log_path),
            "proxy_log": str(self.sidecar.log_path),
            "access_log": str(self.sidecar.access_log_path),
        }
