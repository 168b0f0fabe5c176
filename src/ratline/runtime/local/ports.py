"""Free TCP ports on the loopback address, handed out at most once per runner.

The OS picks a free port when a socket binds to port 0; the allocator remembers every
port it has handed out so that two instances never get the same one even after the
probing socket is closed and before the instance's process binds it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable

from ratline.runtime.local.procfs import describe_port_holders

_MAX_ATTEMPTS = 200


class PortAllocator:
    """Hands out free ports on one address; `release` returns them to the pool."""

    def __init__(self, host: str = "127.0.0.1", reserved: Iterable[int] = ()) -> None:
        self.host = host
        self._taken: set[int] = set(reserved)

    @property
    def taken(self) -> frozenset[int]:
        return frozenset(self._taken)

    def reserve(self, port: int) -> None:
        """Mark a port chosen elsewhere (e.g. from settings) as in use."""
        self._taken.add(port)

    def is_free(self, port: int) -> bool:
        """Whether `port` is neither handed out nor bound by anyone on the host now."""
        if port in self._taken:
            return False
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((self.host, port))
            except OSError:
                return False
        return True

    def allocate(self) -> int:
        """One free port never handed out before (unless released)."""
        for _ in range(_MAX_ATTEMPTS):
            port = _probe_free_port(self.host)
            if port not in self._taken:
                self._taken.add(port)
                return port
        raise RuntimeError(f"no free TCP port found on {self.host}")

    def allocate_many(self, count: int) -> list[int]:
        return [self.allocate() for _ in range(count)]

    def release(self, ports: Iterable[int]) -> None:
        for port in ports:
            self._taken.discard(port)


class PortInUse(OSError):
    """A port the mesh must listen on is taken; the message names it and its holder."""


def check_free(host: str, port: int, what: str) -> None:
    """Raise PortInUse naming `what` (`RATLINE_XDS_PORT`) and, where /proc tells, the
    process holding it, if `port` cannot be listened on at `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"port {port} ({what}) on {host} is {describe_port_holders(port)}: stop that "
                f"program, or choose another port with {what}"
            ) from None


def _probe_free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port
