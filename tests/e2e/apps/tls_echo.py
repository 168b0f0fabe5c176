"""A TLS echo server for tests: answers each line with `PREFIX SNI line`.

`tls_echo.py PREFIX CERT KEY` serves TLS on `PORT` with that certificate; SNI is the
server name the client asked for (`-` without one), so a test can tell which backend
answered and that the TLS session reached it unbroken.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys


async def main(prefix: str, cert: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    names: dict[int, str] = {}

    def remember(connection: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        names[id(connection)] = name or "-"

    context.sni_callback = remember  # type: ignore[assignment]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sni = names.pop(id(writer.get_extra_info("ssl_object")), "-")
        try:
            while line := await reader.readline():
                writer.write(f"{prefix} {sni} ".encode() + line)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", int(os.environ["PORT"]), ssl=context)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
