"""Promise 5, property-based: the config loader, the validator and the admin API's input.

Hypothesis generates arbitrary text, YAML documents of every known kind with random
specs, instance reports and query parameters. Properties: the loader never raises (every
problem is a message), and the admin API answers every request with a status below 500
and a JSON body, and still serves afterwards. The admin API runs in-process on a real
port, in a thread with its own event loop (stopped by the fixture).
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratline.api.loader import load_text
from ratline.config.store import MeshDirStore
from ratline.controlplane.admin import AdminApi
from ratline.controlplane.app import ControlPlane
from ratline.registry.registry import ReportedInstances
from ratline.settings import Settings, state_dir

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

KINDS = [
    ("networking.istio.io/v1", "VirtualService"),
    ("networking.istio.io/v1", "DestinationRule"),
    ("networking.istio.io/v1", "Gateway"),
    ("networking.istio.io/v1", "ServiceEntry"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("security.istio.io/v1", "AuthorizationPolicy"),
    ("v1", "Service"),
    ("ratline.dev/v1alpha1", "Workload"),
    ("v1", "Pod"),
]
FIELDS = st.sampled_from(
    ["hosts", "http", "route", "destination", "host", "subset", "port", "number", "match",
     "uri", "regex", "prefix", "timeout", "retries", "attempts", "subsets", "labels",
     "trafficPolicy", "selector", "ports", "weight", "gateways", "servers", "spec", "x"]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False),
    st.text(max_size=20), st.sampled_from(["*", "reviews", "10s", "-1s", "([", "v1", ""]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(FIELDS, inner, max_size=5),
    max_leaves=25,
)


@st.composite
def documents(draw: st.DrawFn) -> str:
    api_version, kind = draw(st.sampled_from(KINDS))
    doc: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": draw(st.text(min_size=0, max_size=12) | st.just("ok-name"))},
        "spec": draw(st.dictionaries(FIELDS, VALUES, max_size=5)),
    }
    return yaml.safe_dump(doc)


YAML_TEXT = st.one_of(
    st.text(max_size=300),
    documents(),
    st.lists(documents(), min_size=2, max_size=3).map("---\n".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(YAML_TEXT)
def test_loader_never_raises(text: str) -> None:
    result = load_text(text, "fuzz.yaml")
    for message in result.messages:
        assert message.message


class AdminInThread:
    """The control plane's admin API on a real port, served by a background event loop."""

    def __init__(self, mesh_dir: Path) -> None:
        self.mesh_dir = mesh_dir
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""

    def start(self) -> None:
        self.thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> str:
        store = MeshDirStore(self.mesh_dir, state_dir(self.mesh_dir))
        store.load()
        self.cp = ControlPlane(store, ReportedInstances(), Settings(), mesh_dir=self.mesh_dir)
        self.cp.load()
        self.admin = AdminApi(self.cp)
        port = await self.admin.start("127.0.0.1", 0)
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.admin.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        try:
            with NO_PROXY.open(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, raw


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminInThread]:
    server = AdminInThread(tmp_path_factory.mktemp("fuzzmesh"))
    server.start()
    yield server
    server.stop()


def _check(server: AdminInThread, status: int, body: Any) -> None:
    assert status < 500, (status, body)
    assert isinstance(body, dict), body
    assert server.request("GET", "/healthz")[0] == 200


@settings(max_examples=200, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(YAML_TEXT, st.sampled_from(["/v1/apply", "/v1/delete"]))
def test_admin_apply_and_delete_never_fail(admin: AdminInThread, text: str, path: str) -> None:
    status, body = admin.request("POST", path, text.encode())
    _check(admin, status, body)
    if status == 400:
        assert body["errors"] and all(e["message"] for e in body["errors"])


INSTANCE_REPORTS = st.one_of(
    VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=50),
    st.builds(
        lambda runner, items: json.dumps({"runner": runner, "instances": items}).encode(),
        SCALARS,
        st.lists(st.dictionaries(st.sampled_from(
            ["name", "namespace", "workload", "labels", "ports", "sidecar", "healthy",
             "kind", "app_pid"]), VALUES, max_size=6), max_size=3),
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(INSTANCE_REPORTS)
def test_admin_instance_reports_never_fail(admin: AdminInThread, body: bytes) -> None:
    status, answer = admin.request("PUT", "/v1/instances", body)
    _check(admin, status, answer)


QUERY = st.dictionaries(
    st.sampled_from(["kind", "wait", "timeout", "node", "type"]),
    st.text(max_size=15) | st.sampled_from(["-1", "nan", "inf", "1e9", "0.01", "CDS"]),
    max_size=3,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["/v1/resources", "/v1/config-dump", "/v1/proxy-status",
                        "/v1/analyze", "/v1/status", "/v1/instances"]), QUERY)
def test_admin_queries_never_fail(admin: AdminInThread, path: str, query: dict[str, str]) -> None:
    if "wait" in query:
        query["timeout"] = "0.01"  # a long poll that would wait is not what is tested here
    status, body = admin.request("GET", f"{path}?{urllib.parse.urlencode(query)}")
    _check(admin, status, body)
