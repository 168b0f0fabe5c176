"""A mesh whose control plane serves xDS from two worker processes (`xds_workers=2`).

`ratline up` with mTLS xDS (the default): the control plane starts two
`ratline.xds.worker` children on its xDS port; the sidecars and the gateway, whichever
worker holds their stream, get their config, traffic flows, `proxy-status` shows every
proxy SYNCED, and a routing change reaches every replica.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import version_subsets
from tests.e2e.hello_mesh import HELLO_APP, SERVICE_AND_GATEWAY_YAML, workload_yaml
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

TO_V2 = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: hello
spec:
  hosts: ["*"]
  gateways: [hello-gateway]
  http:
  - route:
    - destination:
        host: hello
        subset: v2
        port:
          number: 8000
"""


def _children(pid: int) -> list[str]:
    """Command lines of the process's children."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat.rsplit(") ", 1)[1].split()[1]) == pid:
            found.append(cmdline)
    return found


def test_mesh_converges_through_two_xds_workers(make_mesh: Any) -> None:
    files = {
        "hello.yaml": SERVICE_AND_GATEWAY_YAML
        + "---\n"
        + workload_yaml("hello-v1", replicas=2)
        + "---\n"
        + workload_yaml("hello-v2", labels={"app": "hello", "version": "v2"}, replicas=2)
        + "---\n"
        + version_subsets("hello"),
        "hello_app.py": HELLO_APP.read_text(),
    }
    mesh = make_mesh(files, xds_workers="2")
    cp_pid = int(mesh.run_info()["control_plane"]["pid"])
    workers = [c for c in _children(cp_pid) if "ratline.xds.worker" in c]
    assert len(workers) == 2, _children(cp_pid)

    def versions_seen(n: int = 12) -> set[str]:
        seen = set()
        for _ in range(n):
            status, body = mesh.get(mesh.gateway_url("/"))
            if status == 200:
                seen.add("v2" if "hello-v2" in body else "v1")
        return seen

    wait_for(lambda: versions_seen() == {"v1", "v2"} or None, timeout=60, what="both versions")

    def all_synced() -> list[dict[str, Any]] | None:
        proxies = mesh.proxy_status()
        ok = len(proxies) == 5 and all(
            p["connected"] and all(t["state"] == "SYNCED" for t in p["types"].values())
            for p in proxies
        )
        return proxies if ok else None

    wait_for(all_synced, timeout=60, what="every proxy SYNCED")

    mesh.apply_ok(TO_V2, "to-v2.yaml")
    # Several requests in a row through the gateway agree: the change reached it.
    wait_for(lambda: versions_seen(20) == {"v2"} or None, timeout=60, what="only v2")
    wait_for(all_synced, timeout=60, what="every proxy SYNCED after the change")
