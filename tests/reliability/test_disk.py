"""Promise 6: the config store on disk.

- A writer SIGKILLed at random moments mid-write never leaves a half-written resource
  file: each file holds the old or the new document, whole; leftover temporary files are
  never read as config and are cleaned up at the next load.
- A full disk (a real 256 KiB tmpfs) gives a clear error (`No space left on device`,
  HTTP 507 from the admin API), applies nothing (a multi-resource apply is all or
  nothing), and leaves the store, in memory and on disk, as it was.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ratline.config.store import MeshDirStore, StoreWriteError
from ratline.settings import state_dir
from tests.helpers import wait_for
from tests.reliability.test_fuzz import AdminInThread

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

KILLS = 10
PAYLOAD_BYTES = 200_000

WRITER = f"""
import sys
from ratline.api.envelope import ResourceKey
from ratline.config.persist import AppliedFiles
files = AppliedFiles(__import__("pathlib").Path(sys.argv[1]))
key = ResourceKey("VirtualService", "default", "big")
i = 0
print("writing", flush=True)
while True:
    i += 1
    files.save(key, {{
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {{"name": "big", "annotations": {{
            "generation": str(i), "payload": "x" * {PAYLOAD_BYTES}, "end": str(i)}}}},
        "spec": {{"hosts": ["big"], "http": [{{"route": [{{"destination": {{"host": "big"}}}}]}}]}},
    }})
"""


def vs(name: str, size: int = 0) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: {name}
  annotations:
    padding: "{"x" * size}"
spec:
  hosts: [{name}]
  http:
  - route:
    - destination: {{host: {name}}}
"""


def test_sigkill_mid_write_never_leaves_half_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "applied"
    rng = random.Random(5)
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)],
                                stdout=subprocess.PIPE, start_new_session=True)
        try:
            assert proc.stdout is not None and proc.stdout.readline() == b"writing\n"
            time.sleep(rng.uniform(0.05, 0.4))  # a random moment in the write loop
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        for path in folder.glob("*.yaml"):
            notes = yaml.safe_load(path.read_text())["metadata"]["annotations"]
            assert notes["end"] == notes["generation"]
            assert len(notes["payload"]) == PAYLOAD_BYTES
    leftovers = list(folder.glob(".*.tmp"))
    mesh = tmp_path / "mesh"
    mesh.mkdir()
    state = state_dir(mesh)
    state.mkdir()
    folder.rename(state / "applied")
    store = MeshDirStore(mesh, state)
    assert store.load() == []
    assert [s.resource.name for s in store.stored()] == ["big"]
    assert not list((state / "applied").glob(".*.tmp"))
    print(f"\nmid-write kills: {KILLS}; temporary files left by kills and cleaned: "
          f"{len(leftovers)}")


@contextlib.contextmanager
def small_filesystem(size: str = "256k") -> Iterator[Path]:
    """A real tmpfs of `size`, mounted for the test and unmounted after (needs root)."""
    mount_point = Path(tempfile.mkdtemp(prefix="ratline-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)
        mount_point.rmdir()


def test_full_disk_is_a_clear_error_and_changes_nothing() -> None:
    assert os.geteuid() == 0, "this test mounts a small tmpfs: run it as root (CI does)"
    with small_filesystem() as mesh:
        state = state_dir(mesh)
        store = MeshDirStore(mesh, state)
        store.load()
        store.apply(vs("kept"), "kept.yaml")
        before = sorted(p.name for p in (state / "applied").iterdir())
        version = store.version
        # Two resources whose files fit one at a time but not together.
        too_big = vs("first", 150_000) + "---\n" + vs("second", 150_000)
        with pytest.raises(StoreWriteError) as refused:
            store.apply(too_big, "big.yaml")
        message = str(refused.value)
        print(f"\nfull disk: {message}")
        assert "No space left on device" in message and "nothing was applied" in message
        assert store.version == version
        assert [s.resource.name for s in store.stored()] == ["kept"]
        assert sorted(p.name for p in (state / "applied").iterdir()) == before
        reloaded = MeshDirStore(mesh, state)
        assert reloaded.load() == []
        assert [s.resource.name for s in reloaded.stored()] == ["kept"]

        # Through the admin API: 507 with the same clear message; the store still serves.
        admin = AdminInThread(mesh)
        admin.start()
        try:
            status, body = admin.request("POST", "/v1/apply", too_big.encode())
            assert status == 507, body
            assert "No space left on device" in body["errors"][0]["message"]
            status, body = admin.request("POST", "/v1/apply", vs("small").encode())
            assert status == 200, body
            wait_for(lambda: admin.request("GET", "/v1/resources")[1]["resources"], timeout=5)
        finally:
            admin.stop()
