"""docs/benchmarks.md from the results dict (the JSON beside it holds every figure)."""

from __future__ import annotations

import math
from typing import Any

from bench.kube import kube_md
from bench.report_sidebyside import sidebyside_md
from bench.streams import streams_md

ISTIO_PERF = "https://istio.io/v1.13/docs/ops/deployment/performance-and-scalability/"
ISTIO_HOP_P90_MS = 1.7 / 2
ISTIO_HOP_P99_MS = 2.7 / 2
"""Istio 1.12/1.13 docs: client + server sidecars add ~1.7 ms p90 and ~2.7 ms p99 (1 KiB,
1,000 rps, 16 connections, mTLS, telemetry v2): about half of that per hop."""

DP_TARGET = 1.15
USS_TARGET_MIB = 20.0
RSS_TARGET_MIB = 1024.0
ENDPOINT_P99_TARGET_MS = 1000.0
NEW_PROXY_TARGET_MS = 100.0


def _f(value: Any, digits: int = 2) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def _verdict(ok: bool, how: str) -> str:
    return f"**met** ({how})" if ok else f"**missed** ({how})"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return lines


def _dataplane(dp: dict[str, Any]) -> list[str]:
    paths = dp["paths"]
    load = dp["load"]
    out = [
        "## 1. Data plane overhead",
        "",
        f"fortio at {load['qps']} requests/s, {load['connections']} connections, "
        f"{dp['response_bytes']}-byte responses (fortio server backend), {load['seconds']} s "
        f"per run, median of {load['runs']} interleaved run(s). Ratline mTLS between the "
        f"sidecars: **{'on' if dp['ratline_mtls'] else 'off'}** (read from the server "
        f"sidecar's config dump); floor mTLS: **{'on' if dp['floor_mtls'] else 'off'}**.",
        "",
    ]
    names = {"direct": "(a) client → server", "ratline": "(b) through two Ratline sidecars",
             "ratline_telemetry_off": "(b0) as (b), telemetry off (no metrics, no tracing)",
             "static_envoy": "(c) two Envoys, static config (floor)"}
    out += _table(
        ["path", "p50 ms", "p90 ms", "p99 ms", "max ms", "achieved rps", "errors",
         "proxy CPU ms / 1k req"],
        [[names[k], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["max_ms"], v["qps"],
          int(v["errors"]), v["proxy_cpu_ms_per_1k"]] for k, v in paths.items()],
    )
    b, c, a = paths["ratline"], paths["static_envoy"], paths["direct"]
    ratio = dp["p99_ratio_ratline_to_floor"]
    hop_p90 = (b["p90_ms"] - a["p90_ms"]) / 2
    hop_p99 = (b["p99_ms"] - a["p99_ms"]) / 2
    out += [
        "",
        f"- Ratios (b)/(c): p50 {b['p50_ms'] / max(c['p50_ms'], 1e-9):.2f}x, "
        f"p90 {b['p90_ms'] / max(c['p90_ms'], 1e-9):.2f}x, p99 {ratio:.2f}x, proxy CPU "
        f"{b['proxy_cpu_ms_per_1k'] / max(c['proxy_cpu_ms_per_1k'], 1e-9):.2f}x.",
        f"- Target (b) ≤ {DP_TARGET}x (c) at p99: "
        + _verdict(ratio <= DP_TARGET, f"{ratio:.2f}x"),
        f"- Added latency per hop ((b) - (a)) / 2: p90 {hop_p90:.2f} ms, p99 {hop_p99:.2f} ms. "
        f"Istio's published figure ([docs]({ISTIO_PERF}), 1.12-1.13, telemetry v2 on, "
        f"16 vCPU nodes): ≈{ISTIO_HOP_P90_MS:.2f} ms p90 and ≈{ISTIO_HOP_P99_MS:.2f} ms p99 "
        "per hop (1.7 / 2.7 ms for both sidecars). Here every process shares 2 cores with "
        "the load generator, which inflates tails for all three paths alike.",
    ]
    if "p99_ratio_telemetry_on_to_off" in dp:
        off = paths["ratline_telemetry_off"]
        tel = dp["p99_ratio_telemetry_on_to_off"]
        target = dp["telemetry_p99_target"]
        out += [
            f"- Telemetry (Istio's metrics counted in Envoy, peer metadata headers, 1% "
            f"tracing) (b)/(b0): p50 {b['p50_ms'] / max(off['p50_ms'], 1e-9):.2f}x, "
            f"p99 {tel:.2f}x, proxy CPU "
            f"{b['proxy_cpu_ms_per_1k'] / max(off['proxy_cpu_ms_per_1k'], 1e-9):.2f}x. "
            f"Target ≤ {target:.2f}x at p99: " + _verdict(tel <= target, f"{tel:.2f}x"),
            f"- Collector (the agent, in the runner) CPU: {dp['collector_cpu_ms_per_1k']:.2f} "
            f"ms per 1,000 requests during the load (counting is in Envoy; the agent works "
            f"per scrape: {dp['scrape_cpu_ms_per_proxy']:.2f} ms CPU per proxy scraped).",
        ]
    out.append("")
    if "paced" in dp:
        out += _paced(dp["paced"], names)
    return out


def _paced(paced: dict[str, Any], names: dict[str, str]) -> list[str]:
    load = paced["load"]
    paths = paced["paths"]
    out = [f"One connection at {load['qps']} requests/s (the latency one request sees with "
           f"nothing else in flight), {load['seconds']} s per run, median of {load['runs']}:",
           ""]
    out += _table(
        ["path", "p50 ms", "p90 ms", "p99 ms", "max ms", "achieved rps", "errors",
         "proxy CPU ms / 1k req"],
        [[names[k], v["p50_ms"], v["p90_ms"], v["p99_ms"], v["max_ms"], v["qps"],
          int(v["errors"]), v["proxy_cpu_ms_per_1k"]] for k, v in paths.items()],
    )
    b, c = paths["ratline"], paths["static_envoy"]
    out += ["", f"- Ratios (b)/(c) at one connection: p50 "
            f"{b['p50_ms'] / max(c['p50_ms'], 1e-9):.2f}x, p99 "
            f"{b['p99_ms'] / max(c['p99_ms'], 1e-9):.2f}x.", ""]
    return out


def _footprint(fp: dict[str, Any]) -> list[str]:
    bare = fp["bare_envoy"]
    rows = [["bare Envoy, one static route", "-", bare["uss_mib"], bare["pss_mib"],
             bare["config_dump_bytes"], "-"]]
    for r in fp["sidecars"]:
        rows.append([f"sidecar, {r['services']} services", "yes" if r["scoped"] else "no",
                     r["uss_mib"], r["pss_mib"], r["config_dump_bytes"], r["clusters"]])
    out = ["## 2. Sidecar footprint", "",
           "One idle `client` workload's sidecar (started by `ratline up`), once its config "
           "settled. Scoped = an Istio `Sidecar` resource limiting egress to "
           f"{fp['scoped_egress']} services. USS = Private_Clean + Private_Dirty "
           "(/proc/PID/smaps_rollup); config = bytes of Envoy's `/config_dump`. Each row is "
           f"the median of {fp.get('launches', 1)} launches (USS of a fresh Envoy varies by "
           "a few MiB from one start to the next here).", ""]
    out += _table(["proxy", "scoped", "USS MiB", "PSS MiB", "config dump bytes", "clusters"],
                  rows)
    small = [r for r in fp["sidecars"] if r["scoped"]]
    unscoped = {r["services"]: r for r in fp["sidecars"] if not r["scoped"]}
    out.append("")
    if small:
        worst = max(small, key=lambda r: r["uss_mib"])
        out.append(f"- Target ≤ {USS_TARGET_MIB:.0f} MB USS for a workload calling ≤ 10 services"
                   f" (scoped; the largest of every mesh size): "
                   + _verdict(worst["uss_mib"] <= USS_TARGET_MIB,
                              f"{worst['uss_mib']:.1f} MiB at {worst['services']} services"))
        same = all(unscoped.get(r["services"], {}).get("clusters") == r["clusters"]
                   for r in small)
        if same:
            out.append("- Scoped and unscoped sidecars got the same config in this run: the "
                       "`Sidecar` resource did not take effect (see `translate.sidecar_scope`).")
        else:
            out.append("- The `Sidecar` resource is translated (`translate.sidecar_scope`): a "
                       "scoped sidecar holds only the clusters, load assignments and virtual "
                       "hosts of the services its egress hosts name, so its config and USS stay "
                       "flat as the mesh grows; an unscoped one holds every service.")
    for n, r in sorted(unscoped.items()):
        out.append(f"- {n} services: {r['uss_mib'] / max(bare['uss_mib'], 1e-9):.2f}x the bare "
                   f"Envoy's USS, {r['config_dump_bytes'] / max(bare['config_dump_bytes'], 1):.1f}"
                   "x its config dump.")
    out.append("")
    return out


def _scale_rows(runs: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for r in runs:
        s = r["size"]
        out += [f"### {s['mode'].upper()} xDS: {s['services']} services, {s['endpoints']} "
                f"endpoints, {s['proxies']} proxies ({s['real_envoys']} real Envoys)", ""]
        out += _table(["figure", "value"], [
            ["initial sync, simulated proxies (all)", f"{r['initial_sync_simulated_max_s']:.2f} s"],
            ["initial sync, simulated proxies (p50)", f"{r['initial_sync_simulated_p50_s']:.2f} s"],
            ["initial sync, real Envoys ready", f"{r['initial_sync_real_envoys_s']:.2f} s"],
            ["control plane CPU during initial sync", f"{r['initial_sync_cpu_s']:.2f} s"],
            ["control plane RSS (idle → synced → peak)",
             f"{r['cp_rss_idle_mib']:.0f} → {r['cp_rss_synced_mib']:.0f} → "
             f"{r['cp_rss_peak_mib']:.0f} MiB"],
            ["NACKs sent by simulated proxies (not resent by the server)", r["nacks_sent"]],
            ["connect + fully sync one new proxy (median)", f"{r['new_proxy_sync_ms']:.1f} ms"],
        ])
        out += ["", "Push convergence (change → proxy receives it; real Envoys: → ACK):", ""]
        rows = []
        for key, label in (("endpoint_change", "one endpoint (EDS)"),
                           ("virtualservice_change", "one VirtualService (RDS)"),
                           ("new_service", "a new service (CDS)")):
            c = r.get(key)
            if c:
                rows.append([label, c["all"]["p50_ms"], c["all"]["p99_ms"], c["all"]["max_ms"],
                             c["real_envoys_ack"]["p99_ms"], c["cp_cpu_s"]])
        out += _table(["change", "p50 ms", "p99 ms", "max ms", "real Envoys p99 ms",
                       "CP CPU s per push"], rows)
        ep = r.get("endpoint_change", {}).get("all", {}).get("p99_ms", float("nan"))
        runs = r.get("endpoint_change", {}).get("runs_p99_ms")
        if runs:
            out += ["", f"The endpoint row is the median of {len(runs)} changes (p99 of each: "
                    + ", ".join(f"{v:.0f}" for v in runs) + " ms; CP CPU: "
                    + ", ".join(f"{v:.2f}" for v in r["endpoint_change"]["runs_cp_cpu_s"])
                    + " s)."]
        out += ["",
                f"- RSS ≤ {RSS_TARGET_MIB:.0f} MiB (istiod ≈ 1.5 GB): "
                + _verdict(r["cp_rss_peak_mib"] <= RSS_TARGET_MIB,
                           f"{r['cp_rss_peak_mib']:.0f} MiB peak, "
                           f"{r['cp_rss_peak_mib'] / 1536:.2f}x istiod"),
                f"- Endpoint change p99 ≤ {ENDPOINT_P99_TARGET_MS:.0f} ms: "
                + _verdict(ep <= ENDPOINT_P99_TARGET_MS, f"{ep:.0f} ms"),
                f"- New proxy ≤ {NEW_PROXY_TARGET_MS:.0f} ms: "
                + _verdict(r["new_proxy_sync_ms"] <= NEW_PROXY_TARGET_MS,
                           f"{r['new_proxy_sync_ms']:.1f} ms"),
                ""]
    return out


def _growth(growth: list[dict[str, Any]]) -> list[str]:
    out = ["## 4. Growth", "",
           "The same run at growing mesh size, fixed proxy count; cost of one endpoint change.",
           ""]
    base = growth[0]["endpoint_change"]["cp_cpu_s"] if growth else 0.0
    rows = []
    for r in growth:
        s, c = r["size"], r["endpoint_change"]
        rows.append([s["services"], s["endpoints"], s["proxies"], c["all"]["p50_ms"],
                     c["all"]["p99_ms"], c["cp_cpu_s"],
                     f"{c['cp_cpu_s'] / base:.1f}x" if base > 0 else "-",
                     f"{r['cp_rss_peak_mib']:.0f}"])
    out += _table(["services", "endpoints", "proxies", "p50 ms", "p99 ms",
                   "CP CPU s per endpoint change", "vs smallest", "CP RSS MiB"], rows)
    growth_ratio = (growth[-1]["endpoint_change"]["cp_cpu_s"] / base) if base > 0 else math.nan
    mesh_ratio = growth[-1]["size"]["services"] / growth[0]["size"]["services"] if growth else 1
    out += ["",
            "- Target: a one-endpoint change costs O(proxies that see that service), not "
            "O(mesh): with the proxy count fixed, the cost should stay flat as the mesh grows. "
            + _verdict(growth_ratio <= 2.0,
                       f"{growth_ratio:.1f}x the CPU for {mesh_ratio:.0f}x the services"),
            ]
    if not growth_ratio <= 2.0:
        out += [
            "- Why: the per-proxy part of a push no longer grows with the mesh; what grows "
            "is the part done once per push (decoding the runner's report of every "
            "instance, assembling the snapshot, building the shared sets). See the notes "
            "below."]
    out.append("")
    return out


def _profile(prof: dict[str, Any]) -> list[str]:
    s = prof["size"]
    total = prof["total_ms"]
    out = ["## Where the time goes", "",
           f"One endpoint-change push at {s['services']} services / {s['endpoints']} endpoints /"
           f" {s['proxies']} SotW proxies, replayed in-process under cProfile (no sockets; "
           f"{prof['note']}). Bytes the push sends: {prof['bytes_sent']:,}.", ""]
    out += _table(["phase", "ms", "share"],
                  [[k, v, f"{v / total * 100:.0f}%"] for k, v in prof["phases_ms"].items()])
    out += ["", "Top functions by own time (ncalls, tottime, percall, cumtime, percall, "
            "function):", "", "```"] + [_short_path(t) for t in prof["top_functions"]]
    out += ["```", ""]
    return out


def _short_path(line: str) -> str:
    """A profile line with the repository and virtualenv prefixes dropped."""
    for marker in ("/src/ratline/", "/site-packages/"):
        head, found, tail = line.partition(marker)
        if found:
            prefix = head.rsplit(" ", 1)[0] + " " if " " in head else ""
            return prefix + marker.strip("/").split("/")[-1] + "/" + tail
    return line


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    sw = m["software"]
    lines = [
        "# Ratline benchmarks",
        "",
        f"Generated by `{results['command']}` ({results['size']} size) on "
        f"{results['generated_at']}, in {results['elapsed_s']:.0f} s. Every figure is in "
        "[benchmarks.json](benchmarks.json). Benchmarks are not tests: CI runs the smoke "
        "size only to keep them working.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_mib']} MiB memory, {m['os']}, "
        f"Python {m['python']}. Software: Ratline {sw['ratline']}, Envoy {sw['envoy']}, "
        f"grpcio {sw['grpcio']}, protobuf {sw['protobuf']}, xds-protos {sw['xds-protos']}, "
        f"fortio {sw['fortio']}.",
        "",
        "Everything (control plane, Envoys, simulated proxies, load generator) shares these "
        "cores, so absolute figures are pessimistic; ratios are measured side by side in "
        "the same run.",
        "",
    ]
    if results.get("load_before"):
        loads = ", ".join(f"{k} {v:.1f}" for k, v in results["load_before"].items())
        lines += [f"The machine is shared with other work: load average (1 min) as each "
                  f"section started: {loads}.", ""]
    if "dataplane" in results:
        lines += _dataplane(results["dataplane"])
    if "footprint" in results:
        lines += _footprint(results["footprint"])
    if "scale" in results:
        lines += ["## 3. Control plane at scale", "",
                  "The real control plane process; simulated proxies are gRPC ADS clients in "
                  "worker processes (one connection each) that subscribe, ACK and NACK as "
                  "Envoy does (2% NACK their first route configuration); real Envoys beside "
                  "them. Convergence is measured from the change to each proxy's receipt of "
                  "the new version (for real Envoys: to their ACK, as the control plane saw it).",
                  ""]
        lines += _scale_rows(results["scale"])
    if "growth" in results:
        lines += _growth(results["growth"])
    if "sidebyside" in results:
        lines += sidebyside_md(results["sidebyside"])
    if "profile" in results:
        lines += _profile(results["profile"])
    if "streams" in results:
        lines += streams_md(results["streams"])
    if "kube" in results:
        lines += kube_md(results["kube"])
    lines += results.get("notes_md", [])
    return "\n".join(lines) + "\n"
