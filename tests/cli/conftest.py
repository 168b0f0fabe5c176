"""Fixtures of the CLI tests: a stub of the admin HTTP API and a mesh dir pointing at it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ratline.settings import state_dir


@dataclass
class StubApi:
    """Canned answers by (method, path); records the requests it got."""

    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def stub_api() -> Iterator[StubApi]:
    stub = StubApi()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            stub.requests.append((self.command, self.path, dict(self.headers.items()), body))
            status, data = stub.answers.get(
                (self.command, self.path.split("?")[0]), (404, {"errors": []})
            )
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def mesh_dir(tmp_path: Path, stub_api: StubApi) -> Path:
    """A mesh directory whose run.json points at the stub API."""
    run = state_dir(tmp_path)
    run.mkdir()
    admin = stub_api.url.removeprefix("http://")
    (run / "run.json").write_text(json.dumps({"control_plane": {"admin": admin, "pid": 1}}))
    return tmp_path
