"""A config edit's push, in-process: the side-by-side mesh, a file edit, every phase timed.

`python -m bench.profile_config_push [--proxies N] [--edit endpoint|virtualservice|new_service]`

Reproduces what the control plane does after a file edit of the side-by-side mesh
(`bench.istiomesh`: ServiceEntries, WorkloadEntries, weighted VirtualServices), without
sockets or processes: re-read the mesh directory, build the snapshot, translate (the first
proxy pays for the shared part), then for every delta stream of the fleet compute its
resources, let the sans-IO delta state decide what to send, and encode it. Each phase is
timed in wall-clock milliseconds (no profiler), so two checkouts can be compared in one
sitting on a noisy machine: run it in both, interleaved, and compare the ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import istiomesh
from bench.fleet import make_fleet
from ratline.config.store import MeshDirStore
from ratline.controlplane.app import GC_THRESHOLDS
from ratline.controlplane.config_source import PackedConfig
from ratline.model.build import build_snapshot
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from ratline.xds import wire
from ratline.xds.delta import DeltaStream
from ratline.xds.protocol import DeltaRequest
from ratline.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE

MESH_AGE_S = 2.1
"""Age of the mesh files before the first edit (past the store's racy-stat window,
`config.store.STAT_TRUSTED_AFTER_NS`; the old store re-read every file anyway)."""


class _Pipeline:
    """The control plane's push path (`ControlPlane._push_now`) over one store."""

    def __init__(self, store: MeshDirStore, instances: list[Any]) -> None:
        self.store = store
        self.instances = instances
        self.settings = Settings()
        self.snapshot: Any = None
        self.generator: MeshGenerator | None = None
        self.config: PackedConfig | None = None

    def push(self) -> PackedConfig:
        snapshot = build_snapshot(
            (s.resource for s in self.store.stored()),
            self.instances,
            self.store.mesh_config,
            f"{self.store.version}-r1",
            config_version=self.store.version,
            previous=self.snapshot,
        )
        self.snapshot = snapshot
        self.generator = MeshGenerator(snapshot, self.settings, previous=self.generator)
        self.config = PackedConfig(self.generator, previous=self.config)
        return self.config


def _subscribe(stream: DeltaStream, resources: Any) -> None:
    """The requests a delta Envoy sends: wildcard CDS/LDS, then EDS and RDS by name."""
    stream.set_resources(resources)
    stream.handle_request(DeltaRequest(CLUSTER))
    stream.handle_request(DeltaRequest(ENDPOINT, subscribe=tuple(sorted(resources[ENDPOINT]))))
    stream.handle_request(DeltaRequest(LISTENER))
    stream.handle_request(DeltaRequest(ROUTE, subscribe=tuple(sorted(resources[ROUTE]))))


def measure(
    proxies: int,
    edit_kind: str,
    repetitions: int,
    services: int = 1000,
    endpoints: int = 5000,
    virtual_services: int = 100,
) -> dict[str, Any]:
    """Median phase timings (ms) of `repetitions` edits of one kind."""
    gc.set_threshold(*GC_THRESHOLDS)
    shape = istiomesh.MeshShape(services, endpoints, virtual_services)
    fleet = make_fleet(proxies, 0)
    instances = [p.instance() for p in fleet]
    runs: list[dict[str, float]] = []
    sent_bytes = 0
    with tempfile.TemporaryDirectory(prefix="ratline-bench-cfgpush-") as tmp:
        config_dir = Path(tmp)
        istiomesh.write_mesh(config_dir, shape)
        # The mesh was written long before its edits in a real run: let the files age
        # past the store's racy-stat window (`config.store.STAT_TRUSTED_AFTER_NS`).
        time.sleep(MESH_AGE_S)
        store = MeshDirStore(config_dir, config_dir / ".ratline")
        store.load()
        pipeline = _Pipeline(store, instances)
        config = pipeline.push()
        streams: dict[str, DeltaStream] = {}
        for p in fleet:
            found = config.resources_for(p.node_id)
            assert found is not None
            streams[p.node_id] = DeltaStream()
            _subscribe(streams[p.node_id], found[1])
        for repetition in range(repetitions):
            edit = istiomesh.EDITS[edit_kind](shape, repetition + 1)
            edit.apply(config_dir)
            phases: dict[str, float] = {}
            t0 = time.perf_counter()
            store.reload_dir()
            t1 = time.perf_counter()
            config = pipeline.push()
            t2 = time.perf_counter()
            first = True
            state = encode = resources_for = 0.0
            sent_bytes = 0
            for node, stream in streams.items():
                a = time.perf_counter()
                found = config.resources_for(node)
                assert found is not None
                b = time.perf_counter()
                responses = stream.set_resources(found[1])
                c = time.perf_counter()
                for response in responses:
                    sent_bytes += len(wire.delta_response_bytes(response))
                d = time.perf_counter()
                if first:
                    phases["first proxy: translate"] = b - a
                    phases["edit to first push"] = d - t0
                    first = False
                else:
                    resources_for += b - a
                state += c - b
                encode += d - c
            t3 = time.perf_counter()
            phases.update(
                {
                    "reload config": t1 - t0,
                    "snapshot + generator": t2 - t1,
                    "other proxies: resources_for": resources_for,
                    "all proxies: delta state": state,
                    "all proxies: encode": encode,
                    "whole push": t3 - t0,
                }
            )
            runs.append({k: v * 1000 for k, v in phases.items()})
    keys = list(runs[0])
    return {
        "size": {
            "services": services,
            "endpoints": endpoints,
            "virtual_services": virtual_services,
            "proxies": proxies,
        },
        "edit": edit_kind,
        "repetitions": repetitions,
        "median_ms": {k: round(statistics.median(r[k] for r in runs), 2) for k in keys},
        "bytes_sent_per_push": sent_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", type=int, default=500)
    parser.add_argument("--edit", choices=sorted(istiomesh.EDITS), default="endpoint")
    parser.add_argument("--repetitions", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.proxies, args.edit, args.repetitions), indent=1))


if __name__ == "__main__":
    main()
