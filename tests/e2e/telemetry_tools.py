"""Real Prometheus and Jaeger for the observability tests, on free loopback ports.

Prometheus runs on the `prometheus.yml` that `ratline prometheus-config` prints; Jaeger
(v2, in-memory storage, OTLP and Zipkin receivers) on a config written here. Both are
stopped by PID when their fixture ends.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.helpers import free_port, http_get, kill_pids, wait_for
from tests.tools import tool


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        status, body, _ = http_get(f"{self.url}{path}?{query}", timeout=10)
        assert status == 200, f"{path}: {status} {body[:300]}"
        data = json.loads(body)
        assert data["status"] == "success", data
        return data["data"]

    def value(self, promql: str) -> float:
        """The sum of an instant query's vector (0 when it is empty)."""
        result = self.api("/api/v1/query", query=promql)["result"]
        return sum(float(r["value"][1]) for r in result)

    def series(self, promql: str) -> list[dict[str, Any]]:
        return list(self.api("/api/v1/query", query=promql)["result"])

    def targets(self, job: str) -> list[dict[str, Any]]:
        active = self.api("/api/v1/targets", state="active")["activeTargets"]
        return [t for t in active if t["labels"].get("job") == job]

    def wait_scraped_after(self, job: str, since: float, timeout: float = 20) -> None:
        """Wait until every target of `job` was scraped (healthy) after `since` (epoch s)."""

        def all_scraped() -> bool:
            found = self.targets(job)
            return bool(found) and all(
                t["health"] == "up" and _epoch(t["lastScrape"]) > since for t in found
            )

        wait_for(all_scraped, timeout=timeout, interval=0.2, what=f"a fresh scrape of {job}")


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@contextmanager
def running_prometheus(config_text: str, workdir: Path) -> Iterator[Prometheus]:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(config_text)
    port = free_port()
    log = (workdir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        prom = Prometheus(f"http://127.0.0.1:{port}")
        wait_for(lambda: http_get(f"{prom.url}/-/ready")[0] == 200, timeout=30,
                 interval=0.2, what="Prometheus ready")
        yield prom
    finally:
        kill_pids([proc.pid], timeout=5)
        log.close()


JAEGER_CONFIG = """
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp, zipkin]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp}
  zipkin:
    endpoint: 127.0.0.1:{zipkin}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"""


class Jaeger:
    def __init__(self, query: int, otlp: int, zipkin: int) -> None:
        self.query_url = f"http://127.0.0.1:{query}"
        self.otlp_port = otlp
        self.zipkin_port = zipkin

    def traces(self, service: str, limit: int = 50) -> list[dict[str, Any]]:
        params = urllib.parse.urlencode({"service": service, "limit": str(limit),
                                         "lookback": "1h"})
        status, body, _ = http_get(f"{self.query_url}/api/traces?{params}", timeout=10)
        assert status == 200, body[:300]
        return list(json.loads(body).get("data") or [])

    def services(self) -> list[str]:
        status, body, _ = http_get(f"{self.query_url}/api/services", timeout=10)
        assert status == 200, body[:300]
        return list(json.loads(body).get("data") or [])


@contextmanager
def running_jaeger(workdir: Path) -> Iterator[Jaeger]:
    workdir.mkdir(parents=True, exist_ok=True)
    ports = {k: free_port() for k in ("query", "query_grpc", "otlp", "zipkin")}
    config = workdir / "jaeger.yaml"
    config.write_text(JAEGER_CONFIG.format(**ports))
    log = (workdir / "jaeger.log").open("wb")
    proc = subprocess.Popen(
        [tool("jaeger"), f"--config=file:{config}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        jaeger = Jaeger(ports["query"], ports["otlp"], ports["zipkin"])
        wait_for(lambda: http_get(f"{jaeger.query_url}/api/services")[0] == 200, timeout=60,
                 interval=0.2, what=f"Jaeger query API (log: {workdir / 'jaeger.log'})")
        yield jaeger
    finally:
        kill_pids([proc.pid], timeout=5)
        log.close()


def now() -> float:
    return time.time()
