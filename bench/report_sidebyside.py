"""The side-by-side section of docs/benchmarks.md: istiod and Ratline, one table per run."""

from __future__ import annotations

import math
import re
from typing import Any

from bench.notes_sidebyside import SIDE_BY_SIDE_NOTES_MD

CHANGES = (
    ("endpoint", "(a) one endpoint address in a ServiceEntry"),
    ("virtualservice", "(b) one VirtualService's weights"),
    ("new_service", "(c) a new ServiceEntry"),
)


def _num(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _ratio(ours: Any, theirs: Any) -> str:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not theirs:
        return "-"
    if math.isnan(ours) or math.isnan(theirs):
        return "-"
    return f"{ours / theirs:.2f}x"


def _rows(run: dict[str, Any]) -> list[tuple[str, Any, Any, int]]:
    """(label, istiod value, Ratline value, digits) for one run's table."""
    i, r = run.get("istiod", {}), run.get("ratline", {})

    def get(side: dict[str, Any], *path: str) -> Any:
        value: Any = side
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    rows = [
        ("initial sync, p50 (s)", get(i, "initial_sync", "p50_s"),
         get(r, "initial_sync", "p50_s"), 2),
        ("initial sync, p99 (s)", get(i, "initial_sync", "p99_s"),
         get(r, "initial_sync", "p99_s"), 2),
        ("initial sync, all proxies (s)", get(i, "initial_sync", "all_s"),
         get(r, "initial_sync", "all_s"), 2),
        ("RSS idle (MiB)", get(i, "rss_idle_mib"), get(r, "rss_idle_mib"), 0),
        ("RSS synced (MiB)", get(i, "rss_synced_mib"), get(r, "rss_synced_mib"), 0),
        ("RSS peak (MiB)", get(i, "rss_peak_mib"), get(r, "rss_peak_mib"), 0),
        ("CPU for the initial sync (s)", get(i, "initial_sync_cpu_s"),
         get(r, "initial_sync_cpu_s"), 2),
    ]
    for key, label in CHANGES:
        short = label.split(" ", 1)[0]
        rows += [
            (f"{label}: p50 (ms)", get(i, key, "all", "p50_ms"), get(r, key, "all", "p50_ms"), 0),
            (f"{short} p99 (ms)", get(i, key, "all", "p99_ms"), get(r, key, "all", "p99_ms"), 0),
            (f"{short} max (ms)", get(i, key, "all", "max_ms"), get(r, key, "all", "max_ms"), 0),
            (f"{short} first proxy (ms)", get(i, key, "all", "first_ms"),
             get(r, key, "all", "first_ms"), 0),
            (f"{short} CPU per push (s)", get(i, key, "cp_cpu_s"), get(r, key, "cp_cpu_s"), 2),
        ]
    return rows


def sidebyside_md(data: dict[str, Any]) -> list[str]:
    ist = data["istiod"]
    deb_i = ist["debounce"]
    deb_r = data["ratline_debounce"]
    out = [
        "## 5. Side by side with istiod",
        "",
        f"Istio's own control plane, `pilot-discovery` built from `{ist['module']}` (patched "
        "at build time so that it starts without Kubernetes, see `bench/istiod_build.py`), "
        "and Ratline, one at a time, neither niced, each given a fresh copy of the same "
        "config directory of Istio kinds: ServiceEntries (nine in ten with inline "
        "endpoints, the rest selecting WorkloadEntries), a DestinationRule with subsets "
        "v1/v2 and a VirtualService splitting 90/10 for the first services, a mesh-wide "
        "PeerAuthentication DISABLE. The same fleet: client sidecars that every service is "
        "visible to, simulated ADS clients (`bench.adsclient`, one connection each, 2% NACK "
        "their first route configuration) plus real Envoys with the same bootstrap, all "
        "opening their streams at once. Ratline is first told of the fleet by a runner's "
        "report (as istiod would learn pods from Kubernetes), before anything is timed.",
        "",
        "- **Convergence** of a proxy: from the file edit (written atomically) until that "
        "proxy has the change: a simulated proxy, when a response holds the changed "
        "resource's new bytes (it ACKs it at once); a real Envoy, when Envoy itself "
        "records taking it in (`last_updated` of the route configuration or cluster in its "
        "config dump; for a load assignment, which Envoy keeps no time for, its `EDS hosts "
        "... changed for cluster` debug line). p50/p99/max over every proxy, real and "
        "simulated; *first proxy* is the fastest, roughly the fixed part: file watch, "
        "debounce, translation. Each change is made "
        f"{data['runs'][0]['size']['repetitions'] if data['runs'] else '-'} times; the "
        "repetition with the median p99 is shown (every p99 is in the JSON).",
        "- **CPU per push**: the control plane's CPU time from the edit until it is idle "
        "again. **Initial sync**: from the fleet's start until a proxy holds all four types "
        "(an Envoy: `/ready` is LIVE). **RSS peak**: the process's high-water mark (VmHWM).",
        f"- **Debounce.** istiod: file watch {deb_i['file watch']}; push {deb_i['push']}. "
        f"Ratline: file watch {deb_r['file watch']}; push {deb_r['push']}. Both at their "
        "defaults.",
        f"- **istiod's connection limit** (`PILOT_MAX_REQUESTS_PER_SECOND`, 25 new streams "
        f"per second by default on 2 cores) is raised to {ist['max_requests_per_second']:,} "
        "so that both face the same burst (Ratline has none); at its default, 2,000 proxies "
        "would need at least 80 s just to be admitted. Its gRPC keepalive timeout "
        f"(`GRPC_KEEPALIVE_TIMEOUT`, 10 s) is raised to {ist.get('keepalive_timeout', '-')}: "
        "at the default, at 2,000 delta proxies on this shared machine, it closed 5,772 "
        "streams in 11 minutes (the clients saw `Socket closed` / `Connection reset by "
        "peer`) and had synced only 299 proxies by then; each reconnect is a full push.",
        "",
    ]
    if data.get("servers") == ["ratline"]:
        out += ["**This run has Ratline's side only** (`--istiod skip`, or `--smoke` without "
                "a built istiod): the istiod column is empty.", ""]
    for run in data["runs"]:
        size = run["size"]
        flavour = "delta" if size["mode"] == "delta" else "state-of-the-world"
        out += [
            f"### {flavour} xDS, {size['proxies']:,} proxies ({size['real_envoys']} real "
            f"Envoys), {size['services']:,} services, {size['endpoints']:,} endpoints, "
            f"{size['virtual_services']} VirtualServices",
            "",
            "| | istiod | Ratline | Ratline/istiod |",
            "|---|---|---|---|",
        ]
        for label, a, b, digits in _rows(run):
            out.append(f"| {label} | {_num(a, digits)} | {_num(b, digits)} | {_ratio(b, a)} |")
        notes = []
        for server in ("istiod", "ratline"):
            side = run.get(server)
            if not side:
                continue
            if "error" in side:
                notes.append(f"**{server} failed in this run:** `{side['error'][:300]}`")
                continue
            held = ", ".join(f"{k} {v}" for k, v in sorted(side["held_by_a_proxy"].items()))
            load = side.get("load_before")
            kib = side.get("initial_sync_bytes_per_proxy", float("nan")) / 1024
            notes.append(
                f"**{server}**: a proxy holds {held} ({kib:,.0f} KiB received); the fleet "
                f"(simulated proxies and Envoys) used {side.get('initial_sync_fleet_cpu_s', 0):.1f}"
                f" s of CPU for the initial sync; streams retried "
                f"{side['initial_sync']['reconnects']}"
                + (f"; load average before the run {load[0]:.1f}" if load else ""))
        out += [""] + [f"- {n}." for n in notes] + _target_line(run) + [""]
        for server in ("ratline",):
            for kind, prof in (run.get(server) or {}).get("profiles", {}).items():
                out += _profile_md(kind, prof)
    return out + SIDE_BY_SIDE_NOTES_MD


TARGET_RATIO = 0.5
"""Issue 14: every row at most 0.5x istiod's, measured in the same run."""


def _target_line(run: dict[str, Any]) -> list[str]:
    rows = [(label, b / a) for label, a, b, _ in _rows(run)
            if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a]
    if not rows:
        return []
    above = [f"{_short(label)} {ratio:.2f}x" for label, ratio in rows if ratio > TARGET_RATIO]
    return [f"- Target every row ≤ {TARGET_RATIO}x istiod: {len(rows) - len(above)} of "
            f"{len(rows)} rows are; above it: " + ("; ".join(above) if above else "none") + "."]


def _short(label: str) -> str:
    """`(a) one endpoint ...: p50 (ms)` → `(a) p50`; `RSS idle (MiB)` → `RSS idle`."""
    label = re.sub(r"^(\([abc]\))[^:]*: ", r"\1 ", label)
    return re.sub(r" \((ms|s|MiB)\)$", "", label)


def _profile_md(kind: str, prof: dict[str, Any]) -> list[str]:
    label = dict(CHANGES)[kind]
    conv = prof["convergence"]
    out = [
        f"Ratline, {label}, under py-spy ({prof['rate_hz']} Hz, not pausing the process; "
        f"an extra change after the measured ones): p99 {conv['p99_ms']:,.0f} ms, first "
        f"proxy {conv['first_ms']:,.0f} ms, {prof['cp_cpu_s']:.2f} s of CPU, "
        f"{prof['samples']:,} samples. Share of samples, own time (top of the stack) and "
        "inclusive (Ratline's functions), and by the innermost Ratline module of a sample:",
        "",
        "| own % | function | inclusive % | Ratline function | % | innermost Ratline module |",
        "|---|---|---|---|---|---|",
    ]
    columns = (prof["own_pct"], prof["inclusive_pct"], prof.get("by_module_pct", []))
    for n in range(max(map(len, columns))):
        cells = []
        for col in columns:
            cells += [str(col[n][1]), f"`{col[n][0]}`"] if n < len(col) else ["", ""]
        out.append("| " + " | ".join(cells) + " |")
    return [*out, ""]
