"""Where a push's time goes: one endpoint change at scale, profiled in-process.

Reproduces what the control plane does for a push, without sockets: build the snapshot,
make the generator, then for every proxy compute its resources, let the sans-IO xDS state
decide what to send, and serialize the responses. Each phase is timed; cProfile names
the functions that cost most.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import mesh
from ratline.config.store import MeshDirStore
from ratline.controlplane.app import GC_THRESHOLDS
from ratline.controlplane.config_source import PackedConfig
from ratline.model.build import build_snapshot
from ratline.settings import Settings
from ratline.translate.generator import MeshGenerator
from ratline.xds import wire
from ratline.xds.protocol import SotwRequest
from ratline.xds.sotw import SotwStream
from ratline.xds.types import CLUSTER, ENDPOINT, LISTENER, ROUTE

TOP_FUNCTIONS = 12


def _subscribe(stream: SotwStream, resources: Any) -> None:
    """Bring a stream to the synced state a connected Envoy would be in."""
    stream.set_resources(resources)
    for type_url in (CLUSTER, LISTENER):
        stream.handle_request(SotwRequest(type_url))
    eds = tuple(sorted(resources.get(ENDPOINT, {})))
    stream.handle_request(SotwRequest(ENDPOINT, resource_names=eds))
    stream.handle_request(SotwRequest(ROUTE, resource_names=("http_proxy",)))


def profile_endpoint_push(services: int, endpoints: int, proxies: int) -> dict[str, Any]:
    """Phase timings (ms) of one endpoint-change push, and the top functions by time.

    With the control plane process's GC thresholds, so collections land as they do there.
    """
    gc.set_threshold(*GC_THRESHOLDS)
    replicas = max(1, endpoints // services)
    with tempfile.TemporaryDirectory(prefix="ratline-bench-prof-") as tmp:
        mesh_dir = Path(tmp)
        mesh.write_services(mesh_dir, services)
        store = MeshDirStore(mesh_dir, mesh_dir / ".ratline")
        store.load()
        resources = [s.resource for s in store.stored()]
    instances = [mesh.instance(s, r) for r in range(replicas) for s in range(services)]
    nodes = [i.node_id for i in instances[:proxies]]
    settings = Settings()
    # The config is the same in both snapshots (only an instance changed), as in a real
    # endpoint change: the generator reuses each unchanged proxy's own resources.
    first_generator = MeshGenerator(
        build_snapshot(resources, instances, store.mesh_config, "v1", config_version="c1"),
        settings)
    first = PackedConfig(first_generator)
    streams = {}
    for node in nodes:
        streams[node] = SotwStream()
        found = first.resources_for(node)
        assert found is not None
        _subscribe(streams[node], found[1])
    changed = [replace(instances[-1], healthy=False), *instances[:-1]]

    phases: dict[str, float] = {}
    responses_bytes = 0
    profiler = cProfile.Profile()
    profiler.enable()
    t = time.perf_counter()
    snapshot = build_snapshot(resources, changed, store.mesh_config, "v2", config_version="c1")
    phases["snapshot"] = time.perf_counter() - t
    t = time.perf_counter()
    generator = PackedConfig(MeshGenerator(snapshot, settings, previous=first_generator),
                             previous=first)
    generator.generator.outbound()
    phases["translate shared"] = time.perf_counter() - t
    per_proxy = {"resources_for": 0.0, "xds state": 0.0, "serialize": 0.0}
    for node in nodes:
        t = time.perf_counter()
        found = generator.resources_for(node)
        t2 = time.perf_counter()
        assert found is not None
        out = streams[node].set_resources(found[1])
        t3 = time.perf_counter()
        for response in out:
            responses_bytes += len(wire.sotw_response_bytes(response))
        t4 = time.perf_counter()
        per_proxy["resources_for"] += t2 - t
        per_proxy["xds state"] += t3 - t2
        per_proxy["serialize"] += t4 - t3
    profiler.disable()
    phases.update({f"per proxy: {k}": v for k, v in per_proxy.items()})
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(TOP_FUNCTIONS)
    top = [line.strip() for line in text.getvalue().splitlines()
           if line.strip() and line.strip()[0].isdigit()][:TOP_FUNCTIONS]
    return {
        "size": {"services": services, "endpoints": endpoints, "proxies": proxies},
        "phases_ms": {k: v * 1000 for k, v in phases.items()},
        "total_ms": sum(phases.values()) * 1000,
        "bytes_sent": responses_bytes,
        "top_functions": top,
        "note": "timings include cProfile overhead (roughly 2x); read them as shares",
    }
