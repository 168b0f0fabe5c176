"""A WebSocket echo server for tests: `GET /ws` upgrades, every message comes back as
`PREFIX message`; `GET /` answers `PREFIX` over plain HTTP."""

from __future__ import annotations

import os
import sys

from aiohttp import WSMsgType, web


def main(prefix: str) -> None:
    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                await ws.send_str(f"{prefix} {message.data}")
        return ws

    async def plain(_request: web.Request) -> web.Response:
        return web.Response(text=prefix)

    app = web.Application()
    app.router.add_get("/ws", socket)
    app.router.add_get("/", plain)
    web.run_app(app, host="127.0.0.1", port=int(os.environ["PORT"]), print=None)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "hello")
