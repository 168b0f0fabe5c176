"""Istio's tcp-echo server in Python: answers every line with `PREFIX line`.

`tcp_echo.py PREFIX` listens on every port the runner gives it (`PORT_<NAME>` for each
named container port, else `PORT`), like Istio's `tcp-echo-server 9000,9001 PREFIX`.
"""

from __future__ import annotations

import asyncio
import os
import sys


def ports() -> list[int]:
    named = [int(v) for k, v in sorted(os.environ.items()) if k.startswith("PORT_")]
    return named or [int(os.environ.get("PORT", "9000"))]


async def serve(prefix: str) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(prefix.encode() + b" " + line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    servers = [await asyncio.start_server(handle, "127.0.0.1", port) for port in ports()]
    print(f"listening on {[s.sockets[0].getsockname()[1] for s in servers]}, prefix: {prefix}",
          flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1] if len(sys.argv) > 1 else "hello"))
