"""Serving an aiohttp application on a port (0 picks one), shared by the control plane's APIs."""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web

SHUTDOWN_TIMEOUT_S = 0.5
"""How long a stopping server waits for open requests (long polls) before cancelling them."""


async def serve(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> tuple[web.AppRunner, int]:
    """Start serving `app`; returns its runner (for `cleanup()`) and the bound port."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server: Any = site._server
    bound = int(server.sockets[0].getsockname()[1]) if server else port
    return runner, bound
