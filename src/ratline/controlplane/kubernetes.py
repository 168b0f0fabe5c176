"""The control plane against a Kubernetes cluster (`--kubeconfig FILE` or `--in-cluster`).

Composes `ratline.kube`'s sources with the same `ControlPlane`, xDS server, CSR endpoint
and admin API as local mode:
- config from `KubeConfigStore`, instances from `KubeRegistry` (waits for their first
  lists; serves the last good state whenever the API server is away);
- the mesh CA shared by every replica through a Secret (`ratline.kube.ca_secret`);
  certificate requests authenticated with pods' service-account tokens (TokenReview);
- the admission webhooks (HTTPS, a mesh CA certificate): validation and sidecar
  injection (`/inject`, pods get the addresses and image of `injection_params`);
- leader election: only the leader writes, its work being the webhook configurations
  (with the mesh CA as caBundle), the mesh root in every namespace
  (`istio-ca-root-cert`), the Gateway API Gateways' deployments
  (`ratline.kube.gateway_deployments`) and status write-back; every replica serves xDS;
- `STATE_DIR/.ratline/run.json` and `admin-token`, so `ratline proxy-status --mesh
  STATE_DIR` and the other commands find it as they find a local mesh.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from ratline.api.errors import ConfigMessage
from ratline.config.persist import write_atomic
from ratline.controlplane.app import ControlPlane
from ratline.controlplane.ca_http import server_ssl_context
from ratline.controlplane.http_serving import serve
from ratline.controlplane.security import CA_DIR, ControlPlaneSecurity
from ratline.controlplane.serving import start_serving, until_signalled, write_ready_file
from ratline.kube.analysis import analyze_cluster
from ratline.kube.ca_secret import fetch_plugged_ca, publish_self_signed_ca, sync_self_signed_ca
from ratline.kube.config_store import KubeConfigStore
from ratline.kube.connection import KubeApiError, KubeConnection
from ratline.kube.gateway_deployments import GatewayDeployer
from ratline.kube.injection import InjectionParams
from ratline.kube.injector_config import injector_configuration
from ratline.kube.leader import LeaderElector
from ratline.kube.registry import KubeRegistry
from ratline.kube.root_cert import publish_root_cert
from ratline.kube.status import StatusWriter
from ratline.kube.tokens import TokenReviewer
from ratline.kube.webhook import AdmissionWebhook, apply_configuration, webhook_configuration
from ratline.settings import Settings, state_dir

log = logging.getLogger("ratline.controlplane")

RUN_FILE = "run.json"
PLUGGED_FROM_SECRET = "cacerts-from-secret"


class SetupError(Exception):
    """The control plane cannot start against this cluster; the message says why."""


async def connect(args: argparse.Namespace, settings: Settings) -> KubeConnection:
    try:
        if args.in_cluster:
            return KubeConnection.in_cluster(Path(settings.kube_service_account_dir))
        return await KubeConnection.from_kubeconfig(args.kubeconfig, args.context)
    except Exception as exc:  # the client's config errors have no common base
        raise SetupError(f"cannot load the Kubernetes credentials: {exc}") from None


async def sync_sources(store: KubeConfigStore, registry: KubeRegistry, timeout: float) -> None:
    """Start the watches and wait for every first list (SetupError after `timeout`)."""
    try:
        await store.start()
    except KubeApiError as exc:
        raise SetupError(f"cannot read the cluster: {exc}") from None
    registry.start()
    try:
        await asyncio.wait_for(asyncio.gather(store.wait_synced(), registry.wait_synced()), timeout)
    except TimeoutError:
        informers = [*store.informers, *registry.informers]
        failing = [f"{i.resource}: {i.last_error}" for i in informers if not i.synced.is_set()]
        raise SetupError(
            f"the cluster's objects were not all listed within {timeout:.0f}s: "
            + "; ".join(failing)
        ) from None


async def shared_security(
    connection: KubeConnection, base: Path, settings: Settings, trust_domain: str
) -> ControlPlaneSecurity:
    """The mesh CA as every replica shares it (plugged `cacerts`, or `istio-ca-secret`)."""
    namespace = settings.kube_namespace
    plugged = state_dir(base) / PLUGGED_FROM_SECRET
    if await fetch_plugged_ca(connection, namespace, plugged):
        log.info("mesh CA from Secret %s/cacerts", namespace)
        return ControlPlaneSecurity.setup(
            base, replace(settings, ca_certs_dir=str(plugged)), trust_domain
        )
    ca_dir = state_dir(base) / CA_DIR
    if await sync_self_signed_ca(connection, namespace, ca_dir) == "adopted":
        return ControlPlaneSecurity.setup(base, settings, trust_domain)
    security = ControlPlaneSecurity.setup(base, settings, trust_domain)
    if await publish_self_signed_ca(connection, namespace, ca_dir):
        log.info("mesh CA published as Secret %s/istio-ca-secret", namespace)
        return security
    await sync_self_signed_ca(connection, namespace, ca_dir)  # another replica won the race
    return ControlPlaneSecurity.setup(base, settings, trust_domain)


def findings(
    cp: ControlPlane, store: KubeConfigStore, registry: KubeRegistry
) -> list[ConfigMessage]:
    resources = [s.resource for s in store.stored()]
    pods = [(i.namespace, i.labels) for i in registry.instances()]
    analyzed = analyze_cluster(resources, store.mesh_config, pods)
    return [*store.refused, *analyzed, *cp.translation_messages]


class LeaderWork:
    """What only the leader does: keep the webhook configuration, the mesh root in every
    namespace and the Gateway API Gateways' deployments, and write statuses."""

    def __init__(
        self,
        connection: KubeConnection,
        settings: Settings,
        webhook_bodies: list[dict[str, Any]],
        status: StatusWriter,
        root_pem: str,
        deployer: GatewayDeployer,
    ) -> None:
        self.connection = connection
        self.settings = settings
        self.webhook_bodies = webhook_bodies
        self.status = status
        self.root_pem = root_pem
        self.deployer = deployer

    async def __call__(self) -> None:
        for body in self.webhook_bodies:
            while True:
                try:
                    await apply_configuration(self.connection, body)
                    break
                except KubeApiError as exc:
                    log.warning("webhook configuration not applied: %s; retrying", exc)
                    await asyncio.sleep(2)
        side = [
            asyncio.create_task(publish_root_cert(self.connection, self.root_pem)),
            asyncio.create_task(self.deployer.run(), name="gateway deployments"),
        ]
        try:
            await self.status.run()
        finally:
            for task in side:
                task.cancel()
            for task in side:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def injection_params(
    settings: Settings, store: KubeConfigStore, info: dict[str, Any]
) -> InjectionParams:
    """What injected pods get: the image, the control plane's addresses, defaultConfig."""
    default = store.mesh_config.default_config.model_dump(
        by_alias=True, exclude_defaults=True, mode="json"
    )
    return InjectionParams(
        image=settings.kube_proxy_image,
        xds_address=settings.kube_injected_xds_address or str(info["xds"]),
        ca_address=settings.kube_injected_ca_address or str(info["ca"]),
        mesh_proxy_config=default,
    )


async def serve_kubernetes(args: argparse.Namespace, settings: Settings) -> int:
    try:
        connection = await connect(args, settings)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return await _serve(connection, args, settings)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        await connection.close()


async def _serve(connection: KubeConnection, args: argparse.Namespace, settings: Settings) -> int:
    store = KubeConfigStore(connection, settings.kube_namespace)
    registry = KubeRegistry(
        connection, settings.kube_proxy_outbound_port, settings.kube_proxy_admin_port
    )
    started = time.monotonic()
    await sync_sources(store, registry, settings.ready_timeout_s)
    listed = time.monotonic()
    base = args.state_dir.resolve()
    trust_domain = store.mesh_config.trust_domain
    try:
        security = await shared_security(connection, base, settings, trust_domain)
    except (OSError, RuntimeError, ValueError, KubeApiError) as exc:
        raise SetupError(f"the mesh CA cannot start: {exc}") from None
    cp = ControlPlane(store, registry, settings)
    cp.mtls = True
    before_push = time.monotonic()
    cp.load()
    first_push_s = time.monotonic() - before_push
    serving = await start_serving(
        cp,
        security,
        settings,
        args.xds_port,
        args.admin_port,
        authenticator=TokenReviewer(connection, trust_domain),
        findings=lambda: findings(cp, store, registry),
    )
    webhook = AdmissionWebhook(
        lambda: [s.resource for s in store.stored()],
        lambda: store.mesh_config,
        lambda: injection_params(settings, store, serving.info),
    )
    tls = server_ssl_context(security.server_chain_pem, security.server_key_pem)
    webhook_runner, webhook_port = await serve(
        webhook.app(), settings.bind_address, settings.kube_webhook_port, ssl_context=tls
    )
    url = f"https://{settings.bind_address}:{webhook_port}"
    status = StatusWriter(
        connection,
        store,
        lambda: findings(cp, store, registry),
        settings.kube_status_debounce_ms / 1000,
        lambda: cp.snapshot.gateway_api_status if cp.snapshot is not None else {},
    )
    # Findings change with config, and with pods appearing, going or relabelled (not with
    # readiness: analysis reads the whole config, too much for every endpoint change).
    # Translation's findings change with pushes, which follow config changes: a status
    # written before the push (its debounce can run past the status debounce) is written
    # again after it.
    store.subscribe(status.mark_dirty)
    cp.subscribe_config_pushes(status.mark_dirty)
    store.subscribe_objects(status.mark_dirty)
    registry.subscribe_labels(status.mark_dirty)
    body = webhook_configuration(
        settings.kube_namespace,
        store.kinds,
        security.ca.root_pem,
        url=url,
        service=settings.kube_webhook_service,
    )
    injector = injector_configuration(
        settings.kube_namespace, security.ca.root_pem, url=url,
        service=settings.kube_webhook_service,
    )
    deployer = GatewayDeployer(connection, store.objects, settings.gateway_port_offset)
    store.subscribe_objects(deployer.mark_dirty)
    identity = f"{socket.gethostname()}-{os.getpid()}"
    elector = LeaderElector(
        connection,
        settings.kube_namespace,
        identity,
        settings.kube_lease_duration_s,
        LeaderWork(
            connection, settings, [body, injector], status, security.ca.root_pem, deployer
        ),
    )
    election = asyncio.create_task(elector.run(), name="leader election")
    info = {
        **serving.info,
        "mode": "kubernetes",
        "cluster": connection.description,
        "webhook": url,
        "identity": identity,
        "initial_list_s": round(listed - started, 3),
        "first_push_s": round(first_push_s, 3),
    }
    _write_run_file(base, info)
    write_ready_file(args.ready_file, {**info, "errors": [str(m) for m in store.refused]})
    try:
        await until_signalled()
    finally:
        election.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await election
        await webhook_runner.cleanup()
        await serving.stop(cp)
        with contextlib.suppress(OSError):
            (state_dir(base) / RUN_FILE).unlink()
    return 0


def _write_run_file(base: Path, info: dict[str, Any]) -> None:
    """What the CLI reads to find this control plane (`--mesh STATE_DIR`)."""
    data = {"mode": "kubernetes", "pid": os.getpid(), "control_plane": info}
    write_atomic(state_dir(base) / RUN_FILE, json.dumps(data, indent=1).encode())
