"""A message channel between the control plane and one of its xDS worker processes.

Length-prefixed pickles of plain tuples over one end of a Unix socket pair, with asyncio
streams. Both ends are processes of the same control plane (the worker is started by it
with the other end of the pair), so pickle carries nothing from outside.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import struct
from typing import Any

_LENGTH = struct.Struct("!Q")


class ChannelClosed(ConnectionError):
    """The other process closed its end (it exited)."""


class Channel:
    """Send and receive whole messages over a connected Unix stream socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def over(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=1 << 20)
        return cls(reader, writer)

    def send(self, message: Any) -> None:
        """Queue one message (written as the event loop gets to it)."""
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_LENGTH.pack(len(body)) + body)

    async def drain(self) -> None:
        await self._writer.drain()

    async def receive(self) -> Any:
        """The next message; ChannelClosed once the other end is gone."""
        try:
            header = await self._reader.readexactly(_LENGTH.size)
            (length,) = _LENGTH.unpack(header)
            body = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ChannelClosed("the other process closed the channel") from exc
        return pickle.loads(body)

    def close(self) -> None:
        self._writer.close()
