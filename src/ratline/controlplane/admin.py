"""The control plane's admin HTTP API (docs/admin-api.md), a thin aiohttp adapter."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from google.protobuf import json_format

from ratline.api.analyze import analyze
from ratline.api.envelope import ResourceKey
from ratline.api.errors import ConfigError, ConfigMessage
from ratline.api.kinds import type_name
from ratline.api.secrets import redacted
from ratline.config.store import StoreWriteError
from ratline.controlplane.app import ControlPlane
from ratline.controlplane.ca_http import admin_auth_middleware
from ratline.controlplane.http_serving import serve
from ratline.controlplane.status import proxy_status_json
from ratline.controlplane.telemetry import ControlPlaneTelemetry
from ratline.dashboard.http_api import Dashboard
from ratline.registry.instances import InstanceDecoder
from ratline.registry.registry import ReportedInstances
from ratline.translate.gateway_tls import redacted_secret
from ratline.xds.types import SECRET, SHORT_NAMES

log = logging.getLogger("ratline.admin")

MAX_BODY = 8 * 1024 * 1024
LONG_POLL_MAX_S = 60.0

_TYPE_BY_SHORT = {v: k for k, v in SHORT_NAMES.items()}


def _shown(kind: str, document: Any) -> dict[str, Any]:
    """A stored document as the API shows it: a Secret's values never."""
    return redacted(document) if kind == "Secret" else dict(document)


def _status(statuses: Mapping[ResourceKey, Any], key: ResourceKey) -> dict[str, Any]:
    """`{"status": ...}` for a resource the model gave a status (Gateway API kinds)."""
    found = statuses.get(key)
    return {"status": found} if found is not None else {}


def _without_keys(body: Any) -> Any:
    """An xDS resource as the API shows it: an SDS secret without its private key."""
    if body.type_url != SECRET:
        return body
    secret = secret_pb2.Secret()
    body.Unpack(secret)
    return redacted_secret(secret)


def _errors(messages: list[ConfigMessage], status: int) -> web.Response:
    return web.json_response({"errors": [m.to_json() for m in messages]}, status=status)


def _types(keys: list[ResourceKey]) -> dict[str, str]:
    """kubectl's type name of each resource, for the CLI's `TYPE/NAME created` lines."""
    return {str(k): type_name(k.kind) for k in keys}


def _bad_request(text: str) -> web.Response:
    return _errors([ConfigMessage(text)], 400)


class AdminApi:
    def __init__(
        self,
        cp: ControlPlane,
        token: str | None = None,
        findings: Callable[[], list[ConfigMessage]] | None = None,
        telemetry: ControlPlaneTelemetry | None = None,
    ) -> None:
        self.cp = cp
        self.token = token
        """The admin credential every request but /healthz must carry (None: open)."""
        self.findings = findings or self._local_findings
        """What `/v1/analyze` reports (Kubernetes mode checks Services against pods)."""
        self.telemetry = telemetry
        """Metrics, service discovery, traces (routes of their own), when attached."""
        self.dashboard: Dashboard | None = None
        """The web dashboard under /ui/ and its JSON, when attached (before `start`)."""
        self.address = ""
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._instance_decoder = InstanceDecoder()

    def app(self) -> web.Application:
        dashboard = self.dashboard
        allowed = (
            (lambda r: dashboard.is_open(r) or dashboard.session_allows(r))
            if dashboard is not None else None
        )
        middlewares = [admin_auth_middleware(self.token, allowed)] if self.token else []
        app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/resources", self.resources)
        app.router.add_post("/v1/apply", self.apply)
        app.router.add_post("/v1/delete", self.delete)
        app.router.add_put("/v1/instances", self.put_instances)
        app.router.add_get("/v1/instances", self.get_instances)
        app.router.add_get("/v1/proxy-status", self.proxy_status)
        app.router.add_get("/v1/config-dump", self.config_dump)
        app.router.add_get("/v1/analyze", self.analyze)
        if self.telemetry is not None:
            self.telemetry.add_routes(app, lambda: self.address)
        if self.dashboard is not None:
            self.dashboard.add_routes(app)
        return app

    async def start(self, host: str, port: int) -> int:
        self._runner, bound = await serve(self.app(), host, port)
        self.address = f"{host}:{bound}"
        return bound

    async def stop(self) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- handlers ------------------------------------------------------------------------

    async def healthz(self, _req: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def status(self, _req: web.Request) -> web.Response:
        return web.json_response(self.cp.status(self.address))

    async def resources(self, req: web.Request) -> web.Response:
        kind = req.query.get("kind")
        wait = req.query.get("wait")
        if wait is not None:
            try:
                timeout = min(float(req.query.get("timeout", "30")), LONG_POLL_MAX_S)
            except ValueError:
                return _bad_request("timeout: must be a number of seconds")
            waits = [
                asyncio.ensure_future(self.cp.store.wait_changed(wait, timeout)),
                asyncio.ensure_future(self._closing.wait()),
            ]
            _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
        statuses = self.cp.snapshot.gateway_api_status if self.cp.snapshot is not None else {}
        items = [
            {
                "kind": s.resource.kind,
                "namespace": s.resource.namespace,
                "name": s.resource.name,
                "origin": s.origin,
                "file": s.resource.source.file,
                "document": s.resource.source.document,
                "resource": _shown(s.resource.kind, s.resource.raw),
                **_status(statuses, s.resource.key),
            }
            for s in self.cp.store.stored(kind)
        ]
        return web.json_response({"config_version": self.cp.store.version, "resources": items})

    async def _body_text(self, req: web.Request) -> str | web.Response:
        raw = await req.read()
        try:
            return raw.decode()
        except UnicodeDecodeError:
            return _bad_request("the body is not UTF-8 text")

    async def apply(self, req: web.Request) -> web.Response:
        text = await self._body_text(req)
        if isinstance(text, web.Response):
            return text
        filename = req.headers.get("X-Ratline-Filename")
        try:
            result = self.cp.store.apply(text, filename)
        except StoreWriteError as exc:
            log.error("apply failed: %s", exc)
            return _errors(exc.messages, 507)
        except ConfigError as exc:
            log.warning("apply refused: %s", exc)
            if self.telemetry is not None:
                self.telemetry.refused(m.resource.kind if m.resource else "" for m in exc.messages)
            return _errors(exc.messages, 400)
        warnings = list(result.warnings)
        seen = {str(m) for m in warnings}
        touched = result.created + result.configured + result.unchanged
        for finding in self.cp.translation_findings(touched):
            if str(finding) not in seen:
                seen.add(str(finding))
                warnings.append(finding)
        return web.json_response(
            {
                "created": [str(k) for k in result.created],
                "configured": [str(k) for k in result.configured],
                "unchanged": [str(k) for k in result.unchanged],
                "applied": [str(k) for k in result.created + result.configured],
                "types": _types(result.created + result.configured + result.unchanged),
                "warnings": [m.to_json() for m in warnings],
            }
        )

    async def delete(self, req: web.Request) -> web.Response:
        text = await self._body_text(req)
        if isinstance(text, web.Response):
            return text
        try:
            result = self.cp.store.delete(text, req.headers.get("X-Ratline-Filename"))
        except ConfigError as exc:
            conflict = any("mesh directory" in m.message for m in exc.messages)
            return _errors(exc.messages, 409 if conflict else 400)
        return web.json_response(
            {
                "deleted": [str(k) for k in result.deleted],
                "not_found": [str(k) for k in result.not_found],
                "types": _types(result.deleted + result.not_found),
            }
        )

    async def put_instances(self, req: web.Request) -> web.Response:
        try:
            body: Any = await req.json()
            runner = str(body["runner"])
            instances = self._instance_decoder.decode(runner, list(body["instances"]))
        except (ValueError, KeyError, TypeError) as exc:
            return _bad_request(f"instances: malformed report: {exc!r}")
        if not isinstance(self.cp.registry, ReportedInstances):
            message = "this control plane's instances come from its registry, not from runners"
            return _errors([ConfigMessage(message)], 409)
        self.cp.registry.report(runner, instances)
        return web.json_response({"ok": True, "count": len(instances)})

    async def get_instances(self, _req: web.Request) -> web.Response:
        return web.json_response({"instances": [i.to_json() for i in self.cp.registry.instances()]})

    async def proxy_status(self, req: web.Request) -> web.Response:
        nodes = req.query.getall("node", None)
        return web.json_response({"proxies": proxy_status_json(self.cp, nodes)})

    async def config_dump(self, req: web.Request) -> web.Response:
        node = req.query.get("node", "")
        short = req.query.get("type", "").upper()
        type_url = _TYPE_BY_SHORT.get(short)
        if type_url is None:
            return _bad_request(f"type: must be one of {', '.join(sorted(_TYPE_BY_SHORT))}")
        found = self.cp.resources_for(node)
        if found is None:
            return _errors([ConfigMessage(f"node: no proxy known as {node!r}")], 404)
        version, resources = found
        items = [
            json_format.MessageToDict(_without_keys(r.body), preserving_proto_field_name=True)
            for _, r in sorted(resources.get(type_url, {}).items())
        ]
        return web.json_response(
            {"node": node, "type": short, "version": version, "resources": items}
        )

    def _local_findings(self) -> list[ConfigMessage]:
        resources = [s.resource for s in self.cp.store.stored()]
        findings = analyze(resources, self.cp.store.mesh_config, self.cp.mesh_dir)
        return self.cp.store.refused + findings + self.cp.translation_messages

    async def analyze(self, _req: web.Request) -> web.Response:
        return web.json_response({"messages": [m.to_json() for m in self.findings()]})
