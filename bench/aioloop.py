"""The bench process's one event loop for everything grpc.aio, in a thread of its own.

grpc.aio keeps one completion queue per process, drained by one poller thread, and binds
every event loop that ever makes a channel or server to it. Whichever bound loop wakes
first takes *all* pending events and hands each to the loop its call was made on
(`call_soon_threadsafe`). Once a loop has closed (an `asyncio.run` returned, a thread's
loop was closed) while a call of it was still in flight, that call's late events raise
`RuntimeError: Event loop is closed` in whatever other loop drains them: the tracebacks
the bench printed when its second `asyncio.run` started beside the SDS server's loop.

So the bench never runs grpc.aio on more than one loop: `run(coro)` runs a coroutine on
this module's loop, started on first use and never closed before the process exits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def bench_loop() -> asyncio.AbstractEventLoop:
    """The process's grpc.aio event loop (running in a daemon thread)."""
    global _loop
    with _lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="bench-aio", daemon=True).start()
            _loop = loop
        return _loop


def run(coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
    """Run `coro` on the bench loop from synchronous code; its result (or exception)."""
    return asyncio.run_coroutine_threadsafe(coro, bench_loop()).result(timeout_s)
