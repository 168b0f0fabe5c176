"""The bench runs every grpc.aio object of its process on one event loop.

grpc.aio drains one process-wide completion queue from whichever bound loop wakes first;
a loop closed with a call in flight (an `asyncio.run` that returned, the SDS server's
thread loop) then makes the others raise "Event loop is closed" (see `bench.aioloop`).
Here the scale benchmark runs twice in one process, as `python -m bench` does: its
SDS server serves a real Envoy, its new-proxy phase opens ADS streams to a real control
plane. The child records the loop each grpc.aio server and channel is made on.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, json, sys
from pathlib import Path
import grpc.aio

loops = set()
def recording(make):
    def wrapper(*args, **kwargs):
        loops.add(id(asyncio.get_running_loop()))
        return make(*args, **kwargs)
    return wrapper
for name in ("server", "insecure_channel", "secure_channel"):
    setattr(grpc.aio, name, recording(getattr(grpc.aio, name)))

from bench.scale import ScaleSize, run_scale
from ratline.settings import Settings

results = []
for mode in ("sotw", "delta"):
    size = ScaleSize(2, 2, 2, 1, workers=1, mode=mode)
    result = run_scale(size, Settings.from_env(), Path(sys.argv[1]), new_proxy_samples=2,
                       changes=False)
    results.append(result["new_proxy_samples"])
print(json.dumps({"loops": len(loops), "samples": results}))
"""


@pytest.mark.timeout(180)
def test_scale_runs_in_one_process_use_one_grpc_loop_and_print_no_closed_loop_errors(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "logs")],
        cwd=REPO, capture_output=True, text=True, timeout=170,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Event loop is closed" not in proc.stderr, proc.stderr[-4000:]
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    assert answer["samples"] == [2, 2]
    assert answer["loops"] == 1, answer
