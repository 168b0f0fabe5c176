"""The Bookinfo example apps, run as plain processes (no mesh).

Each app is started on an ephemeral port. Where an app calls another, its `HTTP_PROXY`
points at a tiny forwarding proxy in the test that maps `details:9080` etc. to the apps'
real ports and records the headers it saw, standing in for the sidecar.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port

APPS_DIR = Path(__file__).resolve().parents[2] / "examples" / "bookinfo" / "apps"
READY_TIMEOUT_S = 15.0
PROXY_ENV = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy")


@dataclass
class App:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request("GET", path, headers=dict(headers or {}))
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def get_json(self, path: str, headers: Mapping[str, str] | None = None) -> Any:
        status, body = self.get(path, headers)
        assert status == 200, body
        return json.loads(body)


def wait_ready(app: App) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if app.process.poll() is not None:
            raise AssertionError(f"{app.name} exited with {app.process.returncode}")
        try:
            status, _ = app.get("/health")
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{app.name} not ready on port {app.port}")
        time.sleep(0.05)


@pytest.fixture
def start_app(request: pytest.FixtureRequest) -> Callable[..., App]:
    """Start `apps/<name>.py` on a free port; stopped (by PID) when the test ends."""

    def start(name: str, proxy: str | None = None, **env: str) -> App:
        port = free_port()
        child_env = {k: v for k, v in os.environ.items() if k not in PROXY_ENV}
        child_env.update(env, PORT=str(port), POD_NAME=f"{name}-test")
        if proxy is not None:
            child_env["HTTP_PROXY"] = proxy
        process = subprocess.Popen(
            [sys.executable, str(APPS_DIR / f"{name}.py")],
            cwd=APPS_DIR.parent,
            env=child_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

        def stop() -> None:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.kill(process.pid, signal.SIGKILL)
                    process.wait(timeout=5)

        request.addfinalizer(stop)
        app = App(name, port, process)
        wait_ready(app)
        return app

    return start


@dataclass
class RecordingProxy:
    """An HTTP forward proxy: `GET http://reviews:9080/x` goes to the port mapped for reviews."""

    routes: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def recording_proxy() -> Iterator[RecordingProxy]:
    state = RecordingProxy()

    class ProxyHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            target = urllib.parse.urlsplit(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.seen.append((f"{target.hostname}{target.path}", headers))
            port = state.routes.get(target.hostname or "")
            if port is None:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            forwarded = {k: v for k, v in headers.items() if k not in ("connection", "host")}
            conn.request("GET", target.path or "/", headers=forwarded)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            self.send_response(response.status)
            self.send_header("Content-Type", response.getheader("Content-Type") or "")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), ProxyHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_proxy() -> str:
    """A proxy URL nothing listens on: every backend call fails fast."""
    return f"http://127.0.0.1:{free_port()}"


def test_details_answers_book_details(start_app: Callable[..., App]) -> None:
    details = start_app("details")
    body = details.get_json("/details/0")
    assert body["id"] == 0
    assert body["author"] == "William Shakespeare"
    assert body["ISBN-10"] == "1234567890"
    status, _ = details.get("/details/x")
    assert status == 400


def test_ratings_answers_ratings(start_app: Callable[..., App]) -> None:
    ratings = start_app("ratings")
    assert ratings.get_json("/ratings/0") == {
        "id": 0,
        "ratings": {"Reviewer1": 5, "Reviewer2": 4},
    }
    status, _ = ratings.get("/nothing")
    assert status == 404


def test_reviews_v1_has_no_ratings(start_app: Callable[..., App]) -> None:
    reviews = start_app("reviews", SERVICE_VERSION="v1")
    body = reviews.get_json("/reviews/0")
    assert body["version"] == "v1"
    assert body["podname"] == "reviews-test"
    assert [r["reviewer"] for r in body["reviews"]] == ["Reviewer1", "Reviewer2"]
    assert all("rating" not in r for r in body["reviews"])


def test_reviews_v2_without_ratings_reports_it_unavailable(
    start_app: Callable[..., App],
) -> None:
    reviews = start_app("reviews", proxy=closed_port_proxy(), SERVICE_VERSION="v2")
    body = reviews.get_json("/reviews/0")
    assert body["version"] == "v2"
    assert body["reviews"][0]["rating"] == {"error": "Ratings service is currently unavailable"}


@pytest.mark.parametrize(("version", "color"), [("v2", "black"), ("v3", "red")])
def test_reviews_with_ratings_colours_the_stars(
    start_app: Callable[..., App],
    recording_proxy: RecordingProxy,
    version: str,
    color: str,
) -> None:
    recording_proxy.routes["ratings"] = start_app("ratings").port
    reviews = start_app("reviews", proxy=recording_proxy.url, SERVICE_VERSION=version)
    body = reviews.get_json(
        "/reviews/0", {"end-user": "jason", "x-request-id": "req-1", "x-other": "no"}
    )
    assert [r["rating"] for r in body["reviews"]] == [
        {"stars": 5, "color": color},
        {"stars": 4, "color": color},
    ]
    (where, headers) = recording_proxy.seen[-1]
    assert where == "ratings/ratings/0"
    assert headers["end-user"] == "jason"
    assert headers["x-request-id"] == "req-1"
    assert "x-other" not in headers


def test_productpage_without_backends_says_unavailable(start_app: Callable[..., App]) -> None:
    productpage = start_app("productpage", proxy=closed_port_proxy())
    status, body = productpage.get("/productpage")
    page = body.decode()
    assert status == 200
    assert "Sorry, product reviews are currently unavailable for this book." in page
    assert "Sorry, product details are currently unavailable for this book." in page
    status, _ = productpage.get("/api/v1/products/0/reviews")
    assert status == 503
    products = productpage.get_json("/api/v1/products")
    assert products[0]["title"] == "The Comedy of Errors"


def test_productpage_shows_details_reviews_and_stars(
    start_app: Callable[..., App], recording_proxy: RecordingProxy
) -> None:
    recording_proxy.routes["ratings"] = start_app("ratings").port
    recording_proxy.routes["details"] = start_app("details").port
    recording_proxy.routes["reviews"] = start_app(
        "reviews", proxy=recording_proxy.url, SERVICE_VERSION="v2"
    ).port
    productpage = start_app("productpage", proxy=recording_proxy.url)

    status, body = productpage.get("/productpage?user=jason", {"x-b3-traceid": "abc"})
    page = body.decode()
    assert status == 200
    assert '<div class="reviews" data-version="v2">' in page
    assert page.count('<font color="black">★</font>') == 9
    assert "PublisherA" in page
    assert "Signed in as <b>jason</b>" in page
    by_path = {where: headers for where, headers in recording_proxy.seen}
    for where in ("details/details/0", "reviews/reviews/0", "ratings/ratings/0"):
        assert by_path[where]["end-user"] == "jason"
        assert by_path[where]["x-b3-traceid"] == "abc"

    # The `user` cookie stands for `?user=` (it is what /login sets).
    status, body = productpage.get("/productpage", {"Cookie": "user=kim"})
    assert "Signed in as <b>kim</b>" in body.decode()
    assert recording_proxy.seen[-1][1]["end-user"] == "kim"

    # Without a user, no end-user header goes downstream.
    productpage.get("/productpage")
    assert "end-user" not in recording_proxy.seen[-1][1]

    # The ratings API asks ratings itself.
    ratings = productpage.get_json("/api/v1/products/0/ratings", {"x-request-id": "r9"})
    assert ratings == {"id": 0, "ratings": {"Reviewer1": 5, "Reviewer2": 4}}
    assert recording_proxy.seen[-1][0] == "ratings/ratings/0"
    assert recording_proxy.seen[-1][1]["x-request-id"] == "r9"
    details = productpage.get_json("/api/v1/products/0")
    assert details["publisher"] == "PublisherA"


def test_productpage_login_sets_the_user_cookie(start_app: Callable[..., App]) -> None:
    productpage = start_app("productpage", proxy=closed_port_proxy())
    conn = http.client.HTTPConnection("127.0.0.1", productpage.port, timeout=20)
    try:
        conn.request(
            "POST",
            "/login",
            body="username=jason",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        response = conn.getresponse()
        response.read()
        assert response.status == 302
        assert response.getheader("Location") == "/productpage"
        assert (response.getheader("Set-Cookie") or "").startswith("user=jason")
    finally:
        conn.close()
