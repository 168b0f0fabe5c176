"""Benchmark sizes: `smoke` keeps every benchmark working in CI in well under a minute;
`full` is the size the issue asks for, fitted to a 2-core machine."""

from __future__ import annotations

from dataclasses import dataclass

from bench.dataplane import LoadSize
from bench.kube import KubeSize
from bench.scale import ScaleSize
from bench.sidebyside import SideBySideSize
from bench.streams import StreamsSize


@dataclass(frozen=True)
class Sizes:
    name: str
    load: LoadSize
    footprint_services: tuple[int, ...]
    scale: tuple[ScaleSize, ...]
    growth_services: tuple[int, ...]
    growth_proxies: int
    growth_endpoints_per_service: int
    profile: tuple[int, int, int]
    """(services, endpoints, proxies) of the in-process push profile."""
    streams: tuple[StreamsSize, ...] = ()
    """Concurrent-stream runs: simulated proxies on a tiny mesh."""
    kube: tuple[KubeSize, ...] = ()
    """Runs against a real kube-apiserver: Services, pods per Service, simulated proxies."""
    sidebyside: tuple[SideBySideSize, ...] = ()
    """istiod and Ratline side by side: proxies and xDS flavour of each run."""


SMOKE = Sizes(
    name="smoke",
    load=LoadSize(qps=200, connections=4, seconds=1.0, runs=1),
    footprint_services=(10,),
    scale=(ScaleSize(10, 20, 20, 2, mode="sotw"), ScaleSize(10, 20, 20, 2, mode="delta")),
    growth_services=(5, 20),
    growth_proxies=10,
    growth_endpoints_per_service=2,
    profile=(10, 20, 20),
    streams=(StreamsSize(50, timeout_s=60),),
    kube=(KubeSize(10, 2, 10),),
    sidebyside=tuple(
        SideBySideSize(8, mode, services=10, endpoints=50, virtual_services=2,
                       real_envoys=2, workers=1, repetitions=1)
        for mode in ("delta", "sotw")),
)

FULL = Sizes(
    name="full",
    load=LoadSize(qps=1000, connections=16, seconds=10.0, runs=3),
    footprint_services=(10, 100, 1000),
    scale=(ScaleSize(1000, 5000, 1000, 20, mode="sotw"),
           ScaleSize(1000, 5000, 2000, 20, mode="sotw"),
           ScaleSize(1000, 5000, 2000, 20, mode="delta")),
    growth_services=(100, 1000, 5000),
    growth_proxies=200,
    growth_endpoints_per_service=2,
    profile=(1000, 5000, 2000),
    streams=(StreamsSize(2000), StreamsSize(4000, workers=4)),
    kube=(KubeSize(1000, 5, 500, istiod=True),),
    sidebyside=tuple(SideBySideSize(proxies, mode)
                     for proxies in (500, 2000) for mode in ("delta", "sotw")),
)
