"""`python -m bench.dashboard_load`: how long the dashboard's pages take for a 100-service mesh.

Set-up, all real but the traffic: a control plane process (`python -m ratline.controlplane`)
on a mesh directory of 100 Services with a DestinationRule each; 200 workload instances
(two versions per service) and the ingress gateway reported over the admin API as a
runner would (their proxies are not running, so they show NOT CONNECTED); a real
Prometheus whose database was filled by `promtool tsdb create-blocks-from openmetrics`
with ten minutes of Istio's series, one sample every 15 s, for 392 edges (the gateway
calls four entry services, each service two others; every version calls every version),
a tenth of them with some 503s. The dashboard reads that Prometheus
(`RATLINE_DASHBOARD_PROMETHEUS`). Each page is loaded in headless Chromium (Debian's,
driven by Playwright: `tests.e2e.browser`) in a fresh tab, from navigation to its data
drawn (the page marks `#main` when it has rendered; the graph draws first without
latencies, then with them: both are timed); median and worst of `--runs`.
The collector path (no Prometheus, reading every proxy's Envoy stats) is not part of it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.mesh import ControlPlaneProcess, service_name, write_services
from bench.procs import ProcessGroup, free_port, http_get, http_send, wait_for
from ratline.observability.istio_metrics import BUCKETS
from ratline.registry.instances import InstancePort, ProxyKind, SidecarPorts, WorkloadInstance

SERVICES = 100
VERSIONS = ("v1", "v2")
ENTRIES = 4
STEP_S = 15
POINTS = 41
PAGES = (
    ("graph", "#/graph", "graph"),
    ("graph with p99 labels", "#/graph", "graph"),
    ("services", "#/services", "services"),
    ("service", f"#/services/default/{service_name(7)}", "services"),
    ("workloads", "#/workloads", "workloads"),
    ("workload", f"#/workloads/default/{service_name(7)}-v1", "workloads"),
    ("config health", "#/config", "config"),
    ("proxies", "#/proxies", "proxies"),
)


def calls() -> list[tuple[str, str, int]]:
    """(source workload, destination workload, destination service index) of every edge."""
    edges = [("istio-ingressgateway", f"{service_name(i)}-{v}", i)
             for i in range(ENTRIES) for v in VERSIONS]
    for i in range(SERVICES):
        for child in (2 * i + ENTRIES, 2 * i + ENTRIES + 1):
            if child < SERVICES:
                edges += [(f"{service_name(i)}-{a}", f"{service_name(child)}-{b}", child)
                          for a in VERSIONS for b in VERSIONS]
    return edges


def _labels(source: str, dest: str, service: int, **extra: str) -> str:
    ns = "istio-system" if source == "istio-ingressgateway" else "default"
    labels = {
        "reporter": "destination", "source_workload": source, "source_workload_namespace": ns,
        "destination_workload": dest, "destination_workload_namespace": "default",
        "destination_service": f"{service_name(service)}.default.svc.cluster.local",
        "destination_service_name": service_name(service),
        "connection_security_policy": "mutual_tls", "request_protocol": "http", **extra,
    }
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def openmetrics(end: float) -> str:
    """Ten minutes of Istio's request counter and duration histogram for every edge."""
    times = [end - STEP_S * (POINTS - 1 - k) for k in range(POINTS)]
    lines = ["# TYPE istio_requests counter"]
    edges = calls()
    for n, (src, dst, svc) in enumerate(edges):
        codes = {"200": 2.0} if n % 10 else {"200": 1.8, "503": 0.2}
        for code, rate in codes.items():
            labels = _labels(src, dst, svc, response_code=code)
            lines += [f"istio_requests_total{{{labels}}} {rate * STEP_S * k} {t:.3f}"
                      for k, t in enumerate(times)]
    lines.append("# TYPE istio_request_duration_milliseconds histogram")
    shares = [min(1.0, b / 50) ** 0.5 for b in BUCKETS]  # most requests within 50 ms
    for src, dst, svc in edges:
        labels = _labels(src, dst, svc, response_code="200")
        for k, t in enumerate(times):
            count = 2.0 * STEP_S * k
            for bound, share in zip(BUCKETS, shares, strict=True):
                lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="{bound}"}} '
                             f"{count * share} {t:.3f}")
            lines.append(f'istio_request_duration_milliseconds_bucket{{{labels},le="+Inf"}} '
                         f"{count} {t:.3f}")
            family = "istio_request_duration_milliseconds"
            lines.append(f"{family}_count{{{labels}}} {count} {t:.3f}")
            lines.append(f"{family}_sum{{{labels}}} {count * 12} {t:.3f}")
    return "\n".join([*lines, "# EOF", ""])


def instances() -> list[WorkloadInstance]:
    found = []
    for i in range(SERVICES):
        for v in VERSIONS:
            fake = 40000 + i * 2 + VERSIONS.index(v)
            found.append(WorkloadInstance(
                name=f"{service_name(i)}-{v}-0", namespace="default",
                workload=f"{service_name(i)}-{v}",
                labels={"app": service_name(i), "version": v},
                ports=(InstancePort(8080, fake, fake, "http", "HTTP"),),
                sidecar=SidecarPorts(outbound_port=fake, admin_port=fake),
            ))
    found.append(WorkloadInstance(
        name="istio-ingressgateway-0", namespace="istio-system", workload="istio-ingressgateway",
        labels={"istio": "ingressgateway", "app": "istio-ingressgateway"},
        sidecar=SidecarPorts(outbound_port=39998, admin_port=39999), kind=ProxyKind.ROUTER,
    ))
    return found


def destination_rules() -> str:
    return "---\n".join(
        f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {service_name(i)}}}\nspec:\n  host: {service_name(i)}\n"
        "  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n"
        for i in range(SERVICES)
    )


def measure(admin: str, headers: dict[str, str], runs: int) -> dict[str, Any]:
    from tests.e2e.browser import chromium

    results: dict[str, Any] = {}
    api_ms = []
    for _ in range(runs):
        started = time.perf_counter()
        graph = json.loads(http_get(f"{admin}/v1/graph", timeout=30, headers=headers))
        api_ms.append((time.perf_counter() - started) * 1000)
    assert graph["source"] == "prometheus", graph.get("note")
    results["api /v1/graph"] = {"median_ms": statistics.median(api_ms), "max_ms": max(api_ms),
                                "edges": len(graph["edges"]), "nodes": len(graph["nodes"])}
    with chromium() as browser:
        login = browser.new_page()
        code = json.loads(http_send(f"{admin}/v1/dashboard/login-codes", b"", "POST",
                                    "application/json", headers=headers))
        login.goto(admin + code["path"])
        login.wait_for_selector("svg.graph", timeout=60_000)
        login.close()
        for label, route, page_name in PAGES:
            times = []
            for _ in range(runs):
                page = browser.new_page()
                started = time.perf_counter()
                page.goto(f"{admin}/ui/{route}")
                page.wait_for_function(
                    "p => document.querySelector('#main').dataset.page === p", arg=page_name,
                    timeout=60_000)
                if "p99" in label:  # the second read, with latencies, drawn
                    try:
                        page.wait_for_function(
                            "() => [...document.querySelectorAll('svg.graph g.edge text')]"
                            ".some(t => t.textContent.includes('p99'))", timeout=60_000)
                    except Exception:
                        print("no p99 label drawn; the page says:", page.inner_text("#main")[:300],
                              file=sys.stderr)
                        raise
                times.append((time.perf_counter() - started) * 1000)
                page.close()
            results[label] = {"median_ms": statistics.median(times), "max_ms": max(times)}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_load", description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ratline-dash-bench-") as tmp, \
            ProcessGroup(Path(tmp) / "logs") as procs:
        root = Path(tmp)
        metrics = root / "metrics.om"
        metrics.write_text(openmetrics(time.time() - 5))
        data = root / "prometheus"
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(metrics),
                        str(data)], check=True, capture_output=True)
        (root / "prometheus.yml").write_text("global: {scrape_interval: 15s}\n")
        port = free_port()
        procs.start(["prometheus", f"--config.file={root / 'prometheus.yml'}",
                     f"--storage.tsdb.path={data}", f"--web.listen-address=127.0.0.1:{port}",
                     "--storage.tsdb.retention.time=1d"], name="prometheus")
        prometheus = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_get(f"{prometheus}/-/ready"), 60, "Prometheus ready")
        mesh = root / "mesh"
        write_services(mesh, SERVICES)
        (mesh / "destination-rules.yaml").write_text(destination_rules())
        cp = ControlPlaneProcess(procs, mesh, {"RATLINE_DASHBOARD_PROMETHEUS": prometheus})
        cp.report(instances())
        wait_for(lambda: len(json.loads(http_get(f"{cp.admin}/v1/instances",
                                                 headers=cp.headers))["instances"]) == 201,
                 30, "the instances registered")
        results = measure(cp.admin, cp.headers, args.runs)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("| page | median | worst |\n|---|---|---|")
        for label, r in results.items():
            print(f"| {label} | {r['median_ms']:.0f} ms | {r['max_ms']:.0f} ms |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
