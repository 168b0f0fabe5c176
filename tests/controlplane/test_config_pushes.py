"""ControlPlane.subscribe_config_pushes: called after a push whose config changed, so a
Kubernetes status written before that push is written again with translation's findings
of the new config (e.g. RAT0002 for a route to an undefined subset); not after instance-only
pushes, which change no config (statuses must not be re-analyzed on every endpoint)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ratline.config.store import MeshDirStore
from ratline.controlplane.app import ControlPlane
from ratline.registry.registry import ReportedInstances
from ratline.settings import Settings, state_dir

SERVICE = """
apiVersion: v1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
"""

RATINGS_V4 = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings, subset: v4}
"""


def test_a_config_push_calls_the_listeners_with_the_new_findings(tmp_path: Path) -> None:
    async def scenario() -> None:
        (tmp_path / "service.yaml").write_text(SERVICE)
        store = MeshDirStore(tmp_path, state_dir(tmp_path))
        store.load()
        registry = ReportedInstances()
        cp = ControlPlane(store, registry, Settings(envoy="envoy"), mesh_dir=tmp_path)
        cp.load()
        seen: list[str] = []

        def listener() -> None:
            # The push's snapshot is in place when listeners run: findings read now
            # (cp.translation_messages) are those of the new config.
            assert cp.snapshot is not None
            seen.append(cp.snapshot.config_version)

        cp.subscribe_config_pushes(listener)
        cp.translation_findings([])  # a push with nothing new: no call
        assert seen == []
        assert store.apply(RATINGS_V4, "ratings.yaml").created
        cp.translation_findings([])
        assert seen == [store.version], seen
        pushes = cp.push_count
        registry.report("runner", [])  # instance-only change: pushed, no call
        cp.translation_findings([])
        assert cp.push_count == pushes + 1
        assert seen == [store.version], seen

    asyncio.run(scenario())
