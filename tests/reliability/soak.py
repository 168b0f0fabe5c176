"""The soak run: minutes of steady load with config churn and random kills (not in CI).

    .venv/bin/python -m tests.reliability.soak --minutes 10

Starts the reliability tests' mesh (`hello`, 2 replicas, behind the gateway) with the
real CLI, then for the whole run: 100 requests/s through the gateway; a VirtualService /
DestinationRule change every 2 s; every 15 s a random fault (an app SIGKILLed, or a
sidecar SIGKILLed); the control plane SIGKILLed once, at 10% of the run. It samples the
control plane's memory (RSS and PSS) every 10 s from 20% of the run on (the process the
runner restarted after the kill, warmed up), and reports requests sent and failed, the
faults injected, and memory at the start and end of the sampled span. The report is
written into docs/reliability.md between the `soak` markers, and printed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from tests.e2e.conftest import Mesh, mesh_env
from tests.helpers import free_fixed_port, http_get, kill_pids, wait_for
from tests.reliability.conftest import APP, SERVICE_YAML, wait_both_replicas, workload_yaml
from tests.reliability.load import SteadyLoad
from tests.reliability.test_config_churn import churn_yaml

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "reliability.md"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"
RATE = 100.0
CHURN_EVERY_S = 2.0
FAULT_EVERY_S = 15.0
SAMPLE_EVERY_S = 10.0
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class SoakReport:
    minutes: float
    started: str = ""
    sent: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    in_flight_lost_to_sigkill: int = 0
    changes: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    memory: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds into the run, RSS KiB, PSS KiB) of the control plane."""

    def markdown(self) -> str:
        first, last = self.memory[0], self.memory[-1]
        peak = max(m[1] for m in self.memory)
        growth = (last[1] - first[1]) / first[1] * 100
        failures = ", ".join(f"{n} x {r}" for r, n in self.failures.most_common(5)) or "none"
        faults = ", ".join(f"{n} x {k}" for k, n in sorted(self.faults.items()))
        return "\n".join([
            f"Soak run of **{self.minutes:g} minutes** started {self.started} on this machine "
            f"(2 cores), `python -m tests.reliability.soak --minutes {self.minutes:g}`:",
            "",
            "| figure | value |",
            "|---|---|",
            f"| requests sent (gateway, {RATE:g}/s) | {self.sent} |",
            f"| requests failed | {self.failed} |",
            f"| of which in flight on a SIGKILLed proxy (`cx_destroy_remote_with_active_rq`) "
            f"| {self.in_flight_lost_to_sigkill} |",
            f"| failure reasons | {failures} |",
            f"| config changes applied (VirtualService + DestinationRule) | {self.changes} |",
            f"| faults injected | {faults} |",
            f"| control plane RSS at start of sampling (t={first[0]:.0f}s) | "
            f"{first[1] / 1024:.1f} MiB (PSS {first[2] / 1024:.1f} MiB) |",
            f"| control plane RSS at end (t={last[0]:.0f}s) | "
            f"{last[1] / 1024:.1f} MiB (PSS {last[2] / 1024:.1f} MiB) |",
            f"| control plane RSS peak while sampled | {peak / 1024:.1f} MiB |",
            f"| RSS growth start → end | {growth:+.1f}% |",
            "",
            "Memory samples (seconds, RSS MiB): "
            + ", ".join(f"{t:.0f}s {r / 1024:.1f}" for t, r, _ in self.memory),
        ])


def memory_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB."""
    rss = pss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pss = 0
    return rss, pss


def apply(mesh: Mesh, text: str) -> None:
    admin = mesh.run_info()["control_plane"]["admin"]
    req = urllib.request.Request(f"http://{admin}/v1/apply", data=text.encode(), method="POST",
                                 headers=mesh.admin_headers())
    with NO_PROXY.open(req, timeout=10) as resp:
        json.loads(resp.read())


def destroyed_in_flight(mesh: Mesh) -> int:
    admin_port = mesh.run_info()["gateways"][0]["admin_port"]
    _, body, _ = http_get(
        f"http://127.0.0.1:{admin_port}/stats?filter=cx_destroy_remote_with_active_rq$"
    )
    return sum(int(line.rsplit(":", 1)[1]) for line in body.splitlines() if "hello" in line)


def inject_fault(mesh: Mesh, rng: random.Random) -> str:
    instances = [i for i in mesh.run_info()["instances"] if i.get("app_pid")]
    target = rng.choice(instances)
    kind = rng.choice(["app", "sidecar"])
    pid = target["app_pid"] if kind == "app" else target["proxy_pid"]
    if pid:
        os.kill(pid, signal.SIGKILL)
    return f"{kind} SIGKILL"


def run(minutes: float, seed: int) -> SoakReport:
    report = SoakReport(minutes, started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    rng = random.Random(seed)
    duration = minutes * 60
    with tempfile.TemporaryDirectory(prefix="ratline-soak-") as tmp:
        mesh_dir = Path(tmp) / "mesh"
        mesh_dir.mkdir()
        files = {"hello.yaml": SERVICE_YAML, "workload.yaml": workload_yaml(),
                 "app.py": APP.read_text()}
        for name, text in files.items():
            (mesh_dir / name).write_text(text)
        mesh = Mesh(mesh_dir, mesh_env(free_fixed_port()))
        try:
            mesh.up()
            wait_both_replicas(mesh)
            lost_before = destroyed_in_flight(mesh)
            load = SteadyLoad(mesh.gateway_url("/"), rate=RATE, max_seconds=duration + 60)
            load.start()
            started = time.monotonic()
            next_churn = next_fault = next_sample = started
            cp_killed = False
            while (now := time.monotonic()) - started < duration:
                elapsed = now - started
                if not cp_killed and elapsed >= duration * 0.1:
                    os.kill(mesh.run_info()["control_plane"]["pid"], signal.SIGKILL)
                    report.faults["control plane SIGKILL"] += 1
                    cp_killed = True
                    old = mesh.run_info()["control_plane"]
                    wait_for(lambda old=old: (mesh.run_info().get("control_plane") or old)["pid"]
                             != old["pid"], timeout=60, what="control plane restarted")
                if now >= next_churn:
                    try:
                        apply(mesh, churn_yaml(report.changes))
                        report.changes += 1
                    except OSError:
                        pass  # the control plane is restarting; the next change goes through
                    next_churn = now + CHURN_EVERY_S
                if now >= next_fault and elapsed > 5:
                    report.faults[inject_fault(mesh, rng)] += 1
                    next_fault = now + FAULT_EVERY_S
                if elapsed >= duration * 0.2 and now >= next_sample:
                    cp = mesh.run_info().get("control_plane")
                    if cp:
                        report.memory.append((elapsed, *memory_kib(cp["pid"])))
                    next_sample = now + SAMPLE_EVERY_S
                time.sleep(0.1)
            result = load.stop()
            report.sent, report.failed, report.failures = result.sent, result.failed, result.reasons
            report.in_flight_lost_to_sigkill = destroyed_in_flight(mesh) - lost_before
            cp = mesh.run_info()["control_plane"]
            report.memory.append((time.monotonic() - started, *memory_kib(cp["pid"])))
        finally:
            mesh.down()
            kill_pids(mesh.seen_pids, timeout=5)
    return report


def write_doc(report: SoakReport) -> None:
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{report.markdown()}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.soak")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-doc", action="store_true", help="print only; leave the doc")
    args = parser.parse_args(argv)
    report = run(args.minutes, args.seed)
    print(report.markdown())
    if not args.no_doc:
        write_doc(report)
        print(f"\nwritten to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
