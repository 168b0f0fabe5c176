"""`python -m bench [--smoke|--full]`: run every benchmark, write docs/benchmarks.md + .json.

Sections: 1 data plane overhead (fortio), 2 sidecar footprint, 3 control plane at scale
(SotW and delta), 4 growth, a profile of one push, concurrent xDS streams, istiod
side by side with Ratline, and the control plane on a real kube-apiserver (tools
from scripts/install-test-deps). fortio and Istio's pilot-discovery are built into
bench/.tools on first use (needs Go and the Go module proxy; pilot-discovery takes
4-6 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import istiod_build, machine
from bench.dataplane import run_dataplane
from bench.footprint import run_footprint
from bench.fortio import ensure_fortio
from bench.kube import run_kube
from bench.notes import NOTES_MD
from bench.profile_push import profile_endpoint_push
from bench.report import render
from bench.scale import ScaleSize, run_scale
from bench.sidebyside import SideBySideSize, run_sidebyside
from bench.sizes import FULL, SMOKE, Sizes
from bench.streams import run_streams
from ratline.settings import Settings

SECTIONS = ("dataplane", "footprint", "scale", "growth", "profile", "streams",
            "sidebyside", "kube")
REPO = Path(__file__).resolve().parents[1]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny sizes (CI), under a minute")
    size.add_argument("--full", action="store_true", help="the issue's sizes (default)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs",
                        help="where benchmarks.md and benchmarks.json go (default docs/)")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run ({', '.join(SECTIONS)})")
    parser.add_argument("--floor-tls", choices=("auto", "on", "off"), default="auto",
                        help="mTLS for the static-Envoy floor; auto = as Ratline's sidecars do")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other sections' figures from the existing benchmarks.json")
    parser.add_argument("--render", action="store_true",
                        help="only rewrite benchmarks.md from the benchmarks.json in --out-dir")
    parser.add_argument("--istiod", choices=("auto", "build", "skip"), default=None,
                        help="sidebyside: build istiod if needed (default at full size), "
                             "use it only if already built (auto, default with --smoke), "
                             "or run Ratline's side only (skip)")
    parser.add_argument("--sidebyside-runs", default=None, metavar="PROXIES:MODE,...",
                        help="sidebyside: the runs to make, e.g. 500:delta,2000:sotw "
                             "(default: the size's; mesh size stays the size's)")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="sidebyside: times each change is made (median kept)")
    parser.add_argument("--ratline-workers", default=None, metavar="N,...",
                        help="sidebyside: run Ratline once per xDS worker count given "
                             "(servers ratline-wN) instead of once at its default")
    parser.add_argument("--profile-push", action="store_true",
                        help="sidebyside: one more endpoint and VirtualService change of "
                             "Ratline's under py-spy (needs py-spy), after the measured ones")
    parser.add_argument("--log-dir", type=Path, default=REPO / "bench" / "out",
                        help="logs of every process a benchmark starts")
    return parser.parse_args(argv)


def _growth(sizes: Sizes, settings: Settings, log_dir: Path) -> list[dict[str, Any]]:
    runs = []
    for services in sizes.growth_services:
        size = ScaleSize(services, services * sizes.growth_endpoints_per_service,
                         sizes.growth_proxies, 0, mode="sotw")
        runs.append(run_scale(size, settings, log_dir / "growth", new_proxy_samples=1))
    return runs


def _servers(args: argparse.Namespace) -> tuple[str, ...]:
    """The control planes of the side-by-side section (see --istiod)."""
    choice = args.istiod or ("auto" if args.smoke else "build")
    ratline: tuple[str, ...] = ("ratline",)
    if args.ratline_workers:
        ratline = tuple(f"ratline-w{int(n)}" for n in args.ratline_workers.split(","))
    if choice == "skip" or (choice == "auto" and not istiod_build.is_built()):
        return ratline
    return ("istiod", *ratline)


def _sidebyside_sizes(args: argparse.Namespace, sizes: Sizes) -> list[SideBySideSize]:
    base = list(sizes.sidebyside)
    if args.sidebyside_runs:
        template = base[0]
        base = []
        for item in args.sidebyside_runs.split(","):
            proxies, _, mode = item.strip().partition(":")
            if mode not in ("delta", "sotw") or not proxies.isdigit():
                raise SystemExit(f"error: --sidebyside-runs: {item!r} is not PROXIES:delta "
                                 "or PROXIES:sotw")
            base.append(replace(template, proxies=int(proxies), mode=mode))
    if args.repetitions:
        base = [replace(s, repetitions=args.repetitions) for s in base]
    return base


def run(args: argparse.Namespace) -> int:
    if args.render:
        _write(json.loads((args.out_dir / "benchmarks.json").read_text()), args.out_dir)
        return 0
    sizes = SMOKE if args.smoke else FULL
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        print(f"error: unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    fortio = ensure_fortio() if "dataplane" in wanted else None
    results: dict[str, Any] = {
        "command": "python -m bench" + (" --smoke" if args.smoke else " --full"),
        "size": sizes.name,
        "generated_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine.describe(settings.envoy, fortio),
        "errors": {},
    }
    existing = args.out_dir / "benchmarks.json"
    if args.merge and existing.is_file():
        previous = json.loads(existing.read_text())
        if previous.get("size") == sizes.name:
            kept = {k: v for k, v in previous.items() if k in SECTIONS and k not in wanted}
            results.update(kept)
            results["errors"] = {k: v for k, v in previous.get("errors", {}).items()
                                 if k in kept}
            results["section_s"] = {k: v for k, v in previous.get("section_s", {}).items()
                                    if k in kept}
            results["load_before"] = {k: v for k, v in previous.get("load_before", {}).items()
                                      if k in kept}
            if fortio is None and "dataplane" in kept:
                software = results["machine"]["software"]
                software["fortio"] = previous["machine"]["software"]["fortio"]
    jobs = {
        "dataplane": lambda: run_dataplane(sizes.load, settings, str(fortio), args.log_dir,
                                           args.floor_tls),
        "footprint": lambda: run_footprint(list(sizes.footprint_services), settings,
                                           args.log_dir),
        "scale": lambda: [run_scale(s, settings, args.log_dir) for s in sizes.scale],
        "growth": lambda: _growth(sizes, settings, args.log_dir),
        "profile": lambda: profile_endpoint_push(*sizes.profile),
        "streams": lambda: [run_streams(s, args.log_dir) for s in sizes.streams],
        "kube": lambda: [run_kube(s, args.log_dir) for s in sizes.kube],
        "sidebyside": lambda: run_sidebyside(
            _sidebyside_sizes(args, sizes), settings, args.log_dir, _servers(args),
            args.profile_push, lambda part: _write(
                {"elapsed_s": 0.0, **results, "sidebyside": part}, args.out_dir)),
    }
    for name in wanted:
        print(f"bench: {name} ({sizes.name})…", file=sys.stderr, flush=True)
        t = time.monotonic()
        results.setdefault("load_before", {})[name] = os.getloadavg()[0]
        try:
            results[name] = jobs[name]()
        except Exception as exc:  # one broken benchmark must not lose the others' figures
            traceback.print_exc()
            results["errors"][name] = f"{type(exc).__name__}: {exc}"
        results.setdefault("section_s", {})[name] = time.monotonic() - t
        print(f"bench: {name} took {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
        results["elapsed_s"] = sum(results["section_s"].values())
        _write(results, args.out_dir)  # after every section, so a stopped run keeps its figures
    print(f"bench: wrote {args.out_dir / 'benchmarks.md'}", file=sys.stderr)
    return 1 if results["errors"] else 0


def _write(results: dict[str, Any], out_dir: Path) -> None:
    notes = NOTES_MD + [
        f"- **{name} failed in this run:** `{err}`" for name, err in results["errors"].items()
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmarks.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out_dir / "benchmarks.md").write_text(render({**results, "notes_md": notes}))


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds every `with ProcessGroup`, stopping what was started


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    return run(_parse(argv))


if __name__ == "__main__":
    sys.exit(main())
