"""Sampling profiles of a live control plane with py-spy (`pip install py-spy`).

`Profiler(pid, out)` samples the process (without pausing it) until `stop()`; `summarize`
reads py-spy's raw (collapsed-stack) output and gives, as shares of all samples, the
functions most often on top of the stack (own time), Ratline's functions most often
anywhere in it (inclusive time), and each Ratline module's share when a sample is charged
to the innermost Ratline frame (what Ratline code the time was spent under, grpc and
protobuf calls included). Ratline's modules are named by their path under `ratline/`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE_HZ = 200
ENTRY = "ratline/controlplane/__main__.py"
"""The entry point: in every stack, so left out of the inclusive figures."""


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    if local.is_file():
        return str(local)
    return shutil.which("py-spy")


class Profiler:
    def __init__(self, pid: int, out: Path) -> None:
        exe = py_spy()
        if exe is None:
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        self.out = out
        self.log = out.with_suffix(".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [exe, "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--nonblocking",
                 "--format", "raw", "--output", str(out)],
                stdout=log, stderr=log, start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _frame(frame: str) -> str:
    """`push (ratline/controlplane/app.py:120)` → `ratline/controlplane/app.py:push`."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("/ratline/", "site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1] if marker != "/ratline/" else \
                "ratline/" + path.split(marker, 1)[1]
            break
    return f"{path}:{name}" if path else name


def summarize(raw: Path, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    by_module: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        ours = [f for f in frames if f.startswith("ratline/") and not f.startswith(ENTRY)]
        for f in set(ours):
            inclusive[f] += count
        by_module[ours[-1].split(":", 1)[0] if ours else "(no Ratline frame)"] += count
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    return {
        "samples": total,
        "rate_hz": RATE_HZ,
        "own_pct": [(f, share(n)) for f, n in own.most_common(top)],
        "inclusive_pct": [(f, share(n)) for f, n in inclusive.most_common(top)],
        "by_module_pct": [(m, share(n)) for m, n in by_module.most_common(top)],
    }
