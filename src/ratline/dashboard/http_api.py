"""The dashboard's HTTP side, on the control plane's admin port (docs/admin-api.md):
the page under `/ui/`, its login, and the JSON it reads.

`/ui/…` is open (static files, no data); every `/v1/…` path needs the admin token or,
for GET, a dashboard session (`ratline.dashboard.auth`). Traces are the admin API's own
`/v1/traces` routes.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import mimetypes
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ratline.dashboard import outliers, pages
from ratline.dashboard.auth import COOKIE, SESSION_TTL_S, DashboardAuth
from ratline.dashboard.collector import CollectorHistory
from ratline.dashboard.graph import build_graph
from ratline.dashboard.prometheus import PrometheusError
from ratline.dashboard.reader import (
    BadQuery,
    TrafficAnswer,
    TrafficReader,
    parse_seconds,
    parse_source,
)
from ratline.dashboard.selector import Selector
from ratline.dashboard.sources import MeshSources

UI_PREFIX = "/ui/"
DEFAULT_WINDOW_S = 60.0
DEFAULT_CHART_RANGE_S = 600.0
STATIC = importlib.resources.files("ratline.dashboard") / "static"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, text: str) -> web.Response:
    return web.json_response(
        {"errors": [{"severity": "error", "message": text, "text": text}]}, status=status
    )


def _query_errors(handler: Handler) -> Handler:
    async def wrapped(req: web.Request) -> web.StreamResponse:
        try:
            return await handler(req)
        except BadQuery as exc:
            return _error(400, str(exc))
        except PrometheusError as exc:
            return _error(502, str(exc))

    return wrapped


class Dashboard:
    def __init__(self, sources: MeshSources, admin_token: str | None) -> None:
        self.sources = sources
        self.auth = DashboardAuth(admin_token)
        collector = CollectorHistory(sources.read_edges)
        self.reader = TrafficReader(collector, sources.prometheus_url, sources.scrape_interval_s)

    # ---- the control plane's hook --------------------------------------------------------

    def is_open(self, request: web.Request) -> bool:
        """Paths anyone may fetch: the page itself and its login."""
        return request.path == "/ui" or request.path.startswith(UI_PREFIX)

    def session_allows(self, request: web.Request) -> bool:
        """A dashboard session reads (GET) every admin path; it changes nothing."""
        return request.method in ("GET", "HEAD") and self.auth.session_ok(
            request.cookies.get(COOKIE)
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ui", self.ui_redirect)
        app.router.add_get("/ui/", self.index)
        app.router.add_get("/ui/login", self.login_link)
        app.router.add_post("/ui/login", self.login_form)
        app.router.add_get("/ui/static/{name}", self.static)
        app.router.add_post("/v1/dashboard/login-codes", self.login_code)
        app.router.add_get("/v1/dashboard/session", self.session)
        app.router.add_get("/v1/graph", _query_errors(self.graph))
        app.router.add_get("/v1/services", _query_errors(self.services))
        app.router.add_get("/v1/services/{namespace}/{name}", _query_errors(self.service))
        app.router.add_get("/v1/workloads", _query_errors(self.workloads))
        app.router.add_get("/v1/workloads/{namespace}/{name}", _query_errors(self.workload))
        app.router.add_get("/v1/proxies", self.proxies)
        app.router.add_get("/v1/findings", self.findings)
        app.on_cleanup.append(lambda _app: self.reader.close())

    # ---- the page and its login -------------------------------------------------------

    async def ui_redirect(self, _req: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(UI_PREFIX)

    async def index(self, _req: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def static(self, req: web.Request) -> web.StreamResponse:
        return self._file(req.match_info["name"])

    def _file(self, name: str) -> web.StreamResponse:
        if "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        resource = STATIC / name
        if not resource.is_file():
            raise web.HTTPNotFound()
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return web.Response(body=resource.read_bytes(), content_type=content_type,
                            headers={"Cache-Control": "no-cache",
                                     "X-Content-Type-Options": "nosniff",
                                     "Content-Security-Policy": "default-src 'self'; "
                                     "style-src 'self'; img-src 'self' data:"})

    def _logged_in(self) -> web.StreamResponse:
        response = web.HTTPSeeOther(UI_PREFIX)
        response.set_cookie(COOKIE, self.auth.new_session(), max_age=int(SESSION_TTL_S),
                            httponly=True, samesite="Strict", path="/")
        return response

    async def login_link(self, req: web.Request) -> web.StreamResponse:
        if self.auth.redeem(req.query.get("code", "")):
            return self._logged_in()
        raise web.HTTPSeeOther(UI_PREFIX + "#login=expired")

    async def login_form(self, req: web.Request) -> web.StreamResponse:
        form = await req.post()
        if self.auth.token_ok(str(form.get("token") or "")):
            return self._logged_in()
        raise web.HTTPSeeOther(UI_PREFIX + "#login=refused")

    async def login_code(self, _req: web.Request) -> web.Response:
        """A one-time login link (the admin token is needed to ask for one)."""
        code = self.auth.new_code()
        return web.json_response({"path": f"{UI_PREFIX}login?code={code}", "code": code})

    async def session(self, _req: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    # ---- data ------------------------------------------------------------------------

    def _connected(self) -> tuple[list[dict[str, Any]], set[str]]:
        proxies = self.sources.proxy_status()
        return proxies, {p["node"] for p in proxies if p.get("connected")}

    async def _traffic(
        self, req: web.Request, selector: Selector | None = None, latency: bool = True
    ) -> TrafficAnswer:
        window = parse_seconds(req.query.get("window"), DEFAULT_WINDOW_S, "window")
        return await self.reader.window(window, parse_source(req.query.get("source")),
                                        selector, latency)

    async def graph(self, req: web.Request) -> web.Response:
        latency = req.query.get("latency", "1") not in ("0", "false")
        answer = await self._traffic(req, latency=latency)
        _proxies, connected = self._connected()
        data = build_graph(self.sources.snapshot(), connected, answer.traffic)
        return web.json_response({**answer.meta(), **data})

    async def services(self, req: web.Request) -> web.Response:
        answer = await self._traffic(req, latency=False)
        snapshot = self.sources.snapshot()
        rows = pages.services_list(snapshot, answer.traffic) if snapshot else []
        return web.json_response({**answer.meta(), "services": rows})

    async def service(self, req: web.Request) -> web.Response:
        snapshot = self.sources.snapshot()
        ns, name = req.match_info["namespace"], req.match_info["name"]
        service = pages.find_service(snapshot, ns, name) if snapshot else None
        if snapshot is None or service is None:
            return _error(404, f"no service {ns}/{name}")
        range_s = parse_seconds(req.query.get("range"), DEFAULT_CHART_RANGE_S, "range")
        source = parse_source(req.query.get("source"))
        inbound = Selector.service_inbound(service.hostname)
        answer, chart = await asyncio.gather(
            self._traffic(req, inbound), self.reader.chart(inbound, range_s, source)
        )
        callers = [i for i in snapshot.instances.values()
                   if any(k[2] == service.hostname and (k[1], k[0]) == (i.namespace, i.workload)
                          for k in answer.traffic)]
        ejected = await outliers.ejections(self.reader.session, callers, service.hostname)
        detail = pages.service_detail(snapshot, service, answer.traffic,
                                      self.sources.findings(), ejected)
        return web.json_response({**answer.meta(), **detail, "charts": {"inbound": chart}})

    async def workloads(self, req: web.Request) -> web.Response:
        answer = await self._traffic(req, latency=False)
        snapshot = self.sources.snapshot()
        proxies, _ = self._connected()
        rows = pages.workloads_list(snapshot, answer.traffic, proxies) if snapshot else []
        return web.json_response({**answer.meta(), "workloads": rows})

    async def workload(self, req: web.Request) -> web.Response:
        snapshot = self.sources.snapshot()
        ns, name = req.match_info["namespace"], req.match_info["name"]
        range_s = parse_seconds(req.query.get("range"), DEFAULT_CHART_RANGE_S, "range")
        source = parse_source(req.query.get("source"))
        to_it, from_it = Selector.workload_inbound(ns, name), Selector.workload_outbound(ns, name)
        answer, answer_out, inbound, outbound = await asyncio.gather(
            self._traffic(req, to_it), self._traffic(req, from_it),
            self.reader.chart(to_it, range_s, source), self.reader.chart(from_it, range_s, source),
        )
        answer.traffic.update(answer_out.traffic)
        proxies, _ = self._connected()
        detail = (pages.workload_detail(snapshot, ns, name, answer.traffic,
                                        self.sources.findings(), proxies)
                  if snapshot else None)
        if detail is None:
            return _error(404, f"no workload {ns}/{name}")
        return web.json_response({**answer.meta(), **detail,
                                  "charts": {"inbound": inbound, "outbound": outbound}})

    async def proxies(self, _req: web.Request) -> web.Response:
        proxies, _ = self._connected()
        return web.json_response(
            {"proxies": pages.proxies_table(self.sources.snapshot(), proxies)}
        )

    async def findings(self, _req: web.Request) -> web.Response:
        messages = [m.to_json() for m in self.sources.findings()]
        counts: dict[str, int] = {}
        for m in messages:
            counts[str(m["severity"])] = counts.get(str(m["severity"]), 0) + 1
        return web.json_response({"findings": messages, "counts": counts})
