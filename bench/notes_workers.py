"""Notes on serving xDS from several worker processes (issue 14, third part), the restored
2,000-proxy SotW table and growth section, and each absolute target as measured on
2026-12-02. Figures: docs/benchmarks.json (`xds_workers`, `sidebyside`, `growth`)."""

from __future__ import annotations

WORKERS_NOTES_MD = [
    "### xDS from several worker processes (2026-12-02)",
    "",
    "`xds_workers` (`RATLINE_XDS_WORKERS`, default: the cores the control plane may run "
    "on; 1 = the in-process server as before) starts that many `ratline.xds.worker` "
    "processes on the xDS port (SO_REUSEPORT; the kernel split 2,000 streams 1,020 / 980). "
    "The control plane translates and publishes each proxy's resources to the worker "
    "holding its stream (`xds.replica`: each resource and shared set travels once, "
    "content-addressed; then per proxy only numbers); each worker runs the delta/SotW "
    "state, staging, encoding and gRPC writes of its own streams. Authorization stays in "
    "the control plane, status and metrics come back every 100 ms, OTLP spans on the "
    "xDS port are relayed to the control plane.",
    "",
    "Measured side by side in one run (`python -m bench --only sidebyside --istiod skip "
    "--ratline-workers 1,2 --sidebyside-runs 2000:delta --repetitions 3`, the side-by-side "
    "mesh, 2,000 delta proxies with 20 real Envoys; control plane CPU and RSS summed over "
    "its processes; load average 3.5 before):",
    "",
    "| 2,000 delta proxies | 1 worker (in-process) | 2 workers | 2 / 1 |",
    "|---|---|---|---|",
    "| initial sync, all proxies (s) | 32.9 | 32.8 | 1.00x |",
    "| control plane CPU for it (s) | 17.0 | 17.1 | 1.01x |",
    "| the fleet's CPU for it (s) | 38.1 | 36.9 | 0.97x |",
    "| RSS idle / synced / peak (MiB) | 114 / 362 / 1,051 | "
    "191 / 555 / 1,203 | 1.67x / 1.53x / 1.14x |",
    "| (a) endpoint change: first proxy / p50 / p99 (ms) | 212 / 525 / 988 | "
    "253 / 738 / 1,142 | 1.19x / 1.41x / 1.16x |",
    "| (a) CPU per push (s) | 0.91 | 1.20 | 1.32x |",
    "| (b) VirtualService change p99 (ms) / CPU (s) | 2,583 / 2.13 | "
    "2,839 / 2.25 | 1.10x / 1.06x |",
    "| (c) new service p99 (ms) / CPU (s) | 2,522 / 8.37 | 2,162 / 7.54 | 0.86x / 0.90x |",
    "",
    "- **No gain on this machine, and why.** It has 2 cores; during the initial sync the "
    "fleet alone (simulated proxies and 20 Envoys) used 37-38 s of CPU in 33 s and the "
    "control plane 17 s: both cores were busy before a second worker could have one, and "
    "two other sessions ran their tests beside. A second worker then only adds its costs: "
    "about 0.3 s of CPU per endpoint push at 2,000 proxies (≤ 0.15 ms per proxy for the "
    "per-proxy publish, the pickling and the worker's apply, and the shared sets' diff "
    "made once per worker instead of once), and ~77 MiB idle RSS per extra process "
    "(Python and the protos) plus its copy of the shared sets. What multi-worker buys "
    "needs cores the fleet does not take: a control plane on its own machine or pod.",
    "- **On paper, 16 cores and 20,000 proxies** (per-stream costs from the 1-worker "
    "column: endpoint change (0.91 s - ~0.2 s fixed) / 2,000 ≈ 0.36 ms per stream, route "
    "change ≈ 0.9 ms, first sync 17 s / 2,000 ≈ 8.5 ms): 16 workers of 1,250 streams each "
    "cost in parallel ≈ 0.45 s per endpoint change, ≈ 1.1 s per route change, ≈ 11 s for "
    "a full resync after a restart. The serial part is the translator's: the fixed part "
    "(~0.2 s) plus the per-proxy publish, ≤ 0.15 ms x 20,000 ≈ 3 s per push as built "
    "today, which would dominate. To close it: publish per shared set, not per proxy (a "
    "push that only changes a base sends `base A → base B` once per worker and each worker "
    "re-layers its own proxies), so the translator's share of a push is O(changed "
    "resources x workers); then an endpoint change at 20,000 proxies on 16 cores is about "
    "0.2 s + 0.45 s.",
    "",
    "**The issue's absolute targets at 2,000 proxies**, from this run (delta, 1 and 2 "
    "workers) and the SotW side-by-side table above (restored; istiod beside it):",
    "",
    "- **Config edit to first push ≤ 100 ms**: missed, 212-253 ms delta, 304 ms SotW "
    "(first proxy). ~100 ms of it is the two debounces (file watch, push): pushing a store "
    "change without the second debounce and taking the watcher's changed paths instead "
    "of a directory scan would close most of it.",
    "- **Endpoint change p99 ≤ 500 ms**: missed, 988 ms (1 worker) / 1,142 ms (2) delta, "
    "1,483 ms SotW (istiod 7,686 ms: 0.19x). What remains is per stream on cores the "
    "fleet shares; workers need free cores (above), and publishing per shared set would "
    "remove the per-proxy part of the translator's work.",
    "- **VirtualService change p99 ≤ 1 s**: missed, 2,583-2,839 ms delta, 3,977 ms SotW "
    "(istiod 26,110 ms). Every proxy is sent the whole 1,000-host route configuration "
    "(~300 KB); carrying each unchanged virtual host over and splitting the route "
    "configuration (VHDS, or per port) would make it O(what changed).",
    "- **New service p99 ≤ 1 s**: missed, 2,162-2,522 ms delta, 10,493 ms SotW (istiod "
    "49,269 ms). A new service changes the shapes, so nothing is carried over; carrying "
    "per service and per virtual host would close it.",
    "- **Initial sync ≤ 5 s**: missed, 32.8-32.9 s delta, 35.5 s SotW (istiod 340 s: "
    "0.10x); 17 s of control plane CPU (8.5 ms per proxy) against 37 s the fleet used. "
    "Needs cores beside the fleet's (workers), and one encoded first response per scope.",
    "- **Peak RSS ≤ 512 MiB**: missed, 1,051 MiB (1 worker), 1,203 MiB (2 workers, summed), "
    "1,800 MiB SotW (istiod 2,836 MiB): the burst of first responses held in gRPC's "
    "buffers; holding back whole streams until earlier ones are ACKed would bound it.",
    "- **Growth ≤ 1.5x**: missed, 8.0x the CPU per endpoint change at 5,000 services against "
    "100 (0.72 against 0.09 s; 4.0x in the earlier run; this run's load average was 16 "
    "before it started, so read the ratio loosely). The part that grows is done once per "
    "push: decoding the runner's report of every instance, assembling the snapshot, "
    "building the shared sets; an incremental registry API and shared sets kept per "
    "service would close it.",
    "",
]
