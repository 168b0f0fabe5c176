"""Steady load for reliability tests: a few threads issuing GETs at a fixed total rate.

Each worker keeps one keep-alive connection (reopened after an error) and paces itself
to `rate / workers` requests per second. Every request is counted as ok or failed, with
the reason of each failure kept (first 20) so a test can say what went wrong.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

REQUEST_TIMEOUT_S = 10.0


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    bodies: Counter[str] = field(default_factory=Counter)
    duration_s: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.sent} sent, {self.ok} ok, {self.failed} failed in {self.duration_s:.1f}s; "
            f"failures: {dict(self.reasons.most_common(10))}"
        )


class SteadyLoad:
    """`with SteadyLoad(url, rate=100) as load: ...` then `load.result`."""

    def __init__(
        self,
        url: str,
        *,
        rate: float = 100.0,
        workers: int = 4,
        max_seconds: float = 120.0,
        host: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.path = parts.path or "/"
        self.host_header = host
        self.interval = workers / rate
        self.workers = workers
        self.max_seconds = max_seconds
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._started = 0.0

    def __enter__(self) -> SteadyLoad:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._started = time.monotonic()
        for n in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"load-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT_S + 5)
        self.result.duration_s = time.monotonic() - self._started
        return self.result

    def snapshot(self) -> tuple[int, int]:
        """(sent, failed) so far."""
        with self._lock:
            return self.result.sent, self.result.failed

    def _record(self, error: str | None, body: str = "") -> None:
        with self._lock:
            self.result.sent += 1
            if error is None:
                self.result.ok += 1
                self.result.bodies[body.split(" pid ")[0]] += 1
            else:
                self.result.failed += 1
                self.result.reasons[error] += 1

    def _work(self) -> None:
        conn: http.client.HTTPConnection | None = None
        headers = {"host": self.host_header} if self.host_header else {}
        deadline = self._started + self.max_seconds
        next_at = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection(*self.address, timeout=REQUEST_TIMEOUT_S)
            try:
                conn.request("GET", self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace")
                if resp.status == 200:
                    self._record(None, body)
                else:
                    self._record(f"HTTP {resp.status}: {body[:80]!r}")
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                self._record(f"{type(exc).__name__}: {exc}"[:120])
                conn.close()
                conn = None
            next_at += self.interval
            pause = next_at - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)
            else:
                next_at = time.monotonic()
        if conn is not None:
            conn.close()
