"""A stand-in control plane for the runner's tests: `python -m tests.runtime.fake_controlplane`.

It speaks the same command line and ready file as `ratline.controlplane`, serves the
admin API calls the runner makes (`/v1/resources` with long-poll, `PUT /v1/instances`)
from `MESH_DIR/resources.json`, records reports in `MESH_DIR/reported.json`, and answers
every ADS subscription with an empty config so that Envoys become LIVE. This tests the
runner's process handling apart from translation.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2


async def _first_answers(
    requests: AsyncIterator[Any], answer: Callable[[str, str], Any]
) -> AsyncIterator[Any]:
    """One empty response per type URL, to the first request of that type."""
    answered: set[str] = set()
    async for req in requests:
        if req.type_url not in answered:
            answered.add(req.type_url)
            yield answer(req.type_url, str(len(answered)))


class EmptyAds(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest], context: object
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        async for response in _first_answers(
            request_iterator,
            lambda type_url, nonce: discovery_pb2.DiscoveryResponse(
                version_info="1", type_url=type_url, nonce=nonce
            ),
        ):
            yield response

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[discovery_pb2.DeltaDiscoveryRequest], context: object
    ) -> AsyncIterator[discovery_pb2.DeltaDiscoveryResponse]:
        async for response in _first_answers(
            request_iterator,
            lambda type_url, nonce: discovery_pb2.DeltaDiscoveryResponse(
                system_version_info="1", type_url=type_url, nonce=nonce
            ),
        ):
            yield response


def _write(path: Path, data: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def make_app(mesh_dir: Path) -> web.Application:
    source = mesh_dir / "resources.json"

    def current() -> tuple[str, list[object]]:
        text = source.read_text() if source.exists() else "[]"
        return hashlib.sha256(text.encode()).hexdigest()[:12], json.loads(text)

    async def resources(req: web.Request) -> web.Response:
        version, items = current()
        wait = req.query.get("wait")
        if wait is not None:
            deadline = asyncio.get_running_loop().time() + float(req.query.get("timeout", "30"))
            while version == wait and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
                version, items = current()
        return web.json_response({"config_version": version, "resources": items})

    async def put_instances(req: web.Request) -> web.Response:
        body = await req.json()
        _write(mesh_dir / "reported.json", {"pid": os.getpid(), **body})
        return web.json_response({"ok": True, "count": len(body["instances"])})

    async def healthz(_req: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/resources", resources)
    app.router.add_put("/v1/instances", put_instances)
    return app


async def serve(args: argparse.Namespace) -> None:
    server = grpc.aio.server()
    ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(EmptyAds(), server)
    server.add_insecure_port(f"127.0.0.1:{args.xds_port}")
    await server.start()
    runner = web.AppRunner(make_app(args.mesh_dir))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", args.admin_port).start()
    info = {
        "pid": os.getpid(),
        "xds": f"127.0.0.1:{args.xds_port}",
        "admin": f"127.0.0.1:{args.admin_port}",
    }
    _write(args.ready_file, info)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await server.stop(0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mesh-dir", type=Path, required=True)
    parser.add_argument("--xds-port", type=int, required=True)
    parser.add_argument("--admin-port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    if (args.mesh_dir / "refuse").exists():
        print("error: refuse: this mesh dir is invalid", file=sys.stderr)
        return 2
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
