"""Notes under the side-by-side section: what the first run measured and where the time
goes, for whoever works on the control plane's speed next. Text beside the code, as
`bench.notes`; figures quoted here are from the run of 2026-12-01 (see the JSON)."""

from __future__ import annotations

from bench.notes_carry_over import CARRY_OVER_NOTES_MD
from bench.notes_workers import WORKERS_NOTES_MD

SIDE_BY_SIDE_NOTES_MD = [
    *CARRY_OVER_NOTES_MD,
    *WORKERS_NOTES_MD,
    "### Notes on the first side-by-side run (2026-12-01, before the work above; its "
    "tables were replaced by the run above)",
    "",
    "- **Conditions.** One run, on a 2-core machine shared with six other sessions running "
    "their tests: the load average before each control plane's run was 4.6 to 11.9 (it is "
    "in each table's notes). Repetitions of one change differ by up to 2x (every p99 is "
    "in the JSON), and the two control planes of one table ran minutes apart under "
    "different outside load. Read the ratios as a first look; the CPU rows (CPU time, not "
    "wall time) are the steadier ones. A quiet run should redo them: `python -m bench "
    "--only sidebyside --merge --profile-push` (about 40 minutes; `--sidebyside-runs "
    "500:delta --repetitions 1` for a quick look).",
    "- **The fixed part is most of a change at these sizes, for both.** *First proxy* "
    "(edit to the fastest proxy) was 1.1 to 5.2 s for istiod and 2.1 to 6.7 s for "
    "Ratline. istiod waits 250 ms after the first file event, re-reads the whole "
    "directory (1,200 files), debounces 100 ms more, then builds its push context. "
    "Ratline (py-spy, `--profile-push`, tables above; shares at 500 delta proxies): "
    "`MeshDirStore.reload_dir` "
    "re-reads, re-parses and re-validates every file of the mesh directory on each "
    "change (20 % of the endpoint push's samples, 38 % of the VirtualService push's, "
    "through `api.loader`); then the push translates lazily inside the first stream that "
    "asks (`XdsServer._compute` → `PackedConfig._entry` → `MeshGenerator.protos_for`), so "
    "the first proxy waits for all of it.",
    "- **A ServiceEntry endpoint edit is a full config push in Ratline.** The snapshot's "
    "config version changes, so `MeshGenerator.service_outbound` translates every "
    "service's clusters and load assignments again (37 % inclusive at 500 delta proxies), "
    "where istiod sees that only endpoints changed and sends EDS alone: its CPU per "
    "endpoint push is 1.4-3.4 s against 5.7-22.8 s for a VirtualService or new service; "
    "Ratline's is 1.9-2.9 s for the endpoint edit, about what its VirtualService edit "
    "costs. (An endpoint change that comes from a runner's instance report already takes "
    "Ratline's cheap path, section 3.) Inside that translation, "
    "`translate.policy.destination_rule_for` matches every service against every "
    "DestinationRule (`api.hosts.host_matches` 11 % own time, `fqdn` 5 %), and "
    "`model.services._service_entry_services` rebuilds every ServiceEntry's endpoints "
    "(8 % own).",
    "- **What would close it** (the product work after this one): reload only the files "
    "the watcher names (watchfiles gives the changed paths); classify a config change by "
    "what it touched, so that a ServiceEntry whose ports and hosts are unchanged takes "
    "the endpoint path, and a VirtualService change regenerates only routes; index "
    "DestinationRules by host; translate eagerly once per push, not in the first stream.",
    "- **Distribution.** At 2,000 proxies the rest of a push is per stream: in SotW "
    "`xds.server` and `xds.wire` (encoding the response) are the largest Ratline "
    "modules of the profiled VirtualService push (16 % and 14 % of the samples).",
    "- **Initial sync and memory.** Ratline synced 500 proxies in 0.2-0.3x istiod's time "
    "and 2,000 in 0.08-0.09x, with 0.07-0.18x its CPU; istiod needed 5.5 to 6.5 minutes for "
    "2,000 here (2,389 of its delta streams had to be retried: the clients' 20 s "
    "connection timeout expired before istiod answered the HTTP/2 handshake). istiod's "
    "RSS: 1.2-1.3 GB at 500 proxies, 3.4-4.2 GB at 2,000 (Go's heap, GOGC at its "
    "default); Ratline's 0.35-0.54 GB and 0.97-1.77 GB, its peak being the burst of "
    "first responses during the initial sync (the synced RSS is 0.37-0.45 GB).",
    "- **What a proxy receives.** The same mesh gives both servers' proxies 1,200 load "
    "assignments and one route configuration; istiod sends 1,383 KiB per proxy for it "
    "(its clusters carry more metadata, and two more listeners), Ratline 975 KiB. The "
    "fleet's own CPU (simulated proxies and Envoys, in the JSON: "
    "`initial_sync_fleet_cpu_s`, `fleet_cpu_s` per change) shares the cores with the "
    "control plane: at 500 proxies it was about the same for both (28-36 s for the "
    "initial sync); at 2,000 it was 85-87 s with istiod against 33 s with Ratline (istiod's "
    "sync lasted 10x longer, with larger responses and, in delta, 2,389 reconnects), so "
    "there the fleet took more of istiod's cores than of Ratline's. Per change it was "
    "within 2x between the two, except a VirtualService change at 2,000 SotW proxies "
    "(23 s with istiod against 6 s), where istiod's full push re-sends clusters and "
    "listeners too.",
    "- **istiod settings the comparison needed** (above): the connection rate limit and "
    "the keepalive timeout raised, the vanilla-Envoy settings of "
    "`../shared/notes/istiod-without-kubernetes.md`. Ratline's Envoys get the SDS socket "
    "of its agent: Ratline's outbound clusters name their mTLS secrets (a `tlsMode-istio` "
    "transport socket match) even under a mesh-wide PeerAuthentication DISABLE, and "
    "Envoy waits 15 s for them without SDS; istiod sends no TLS settings then.",
    "- **Data plane, where the 16-connection p50 goes** (`python -m bench.dataplane_pacing`"
    ", two floor Envoys with mTLS, 10 s per shape): it is fortio's pacing. By default its "
    "16 connections keep the same schedule, so every 16 ms (at 1,000 rps) or 80 ms (at 200 "
    "rps) 16 requests leave at once and queue in the single-threaded Envoys (~0.3 ms of "
    "CPU each per request): at 200 rps, 16 connections gave p50 5.0-6.9 ms, the same 16 "
    "spread evenly (`-uniform`) 1.2-1.5 ms, one connection 1.0-1.3 ms. At 1,000 rps "
    "`-uniform` took the p50 from 6.5 to 0.9 ms in a quieter minute (from 14.8 to 10.8 ms "
    "in a busier one, when the Envoys did not get the cores). Not the backend: direct to "
    "the fortio server, p50 was 0.5-0.7 ms in every shape. CPU wake-ups cost CPU, not "
    "much latency: at 200 rps, requests that arrive one at a time wake the Envoys for each "
    "(4.6-6.1 context switches per request against 1.5 in bursts) and cost 2.4-3.5x the "
    "Envoy CPU per request (695-920 µs against 265-290 µs), yet one paced connection sees "
    "~1 ms through both. "
    "The section-1 rows keep fortio's default so that they compare with the earlier "
    "reports; the one-connection row is the latency one request sees.",
    "",
]
