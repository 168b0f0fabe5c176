"""`Reconciler`: the loop of the leader's writers (statuses, gateway deployments).

It runs `reconcile` once at start and again after each `mark_dirty`; the marks of a burst
are coalesced by waiting `debounce_s` first. A failure (the API server away, a refused
write) is logged and retried after `retry_s`, while the state already written stands.
"""

from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("ratline.kube.reconcile")


class Reconciler:
    """Base of a writer that makes the cluster match what it wants, after changes."""

    what = "reconcile"
    """What the writer does, for its log lines."""

    def __init__(self, debounce_s: float = 0.0, retry_s: float = 1.0) -> None:
        self.debounce_s = debounce_s
        self.retry_s = retry_s
        self._dirty = asyncio.Event()
        self._dirty.set()

    def mark_dirty(self) -> None:
        self._dirty.set()

    async def reconcile(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Until cancelled."""
        while True:
            await self._dirty.wait()
            if self.debounce_s:
                await asyncio.sleep(self.debounce_s)
            self._dirty.clear()
            try:
                await self.reconcile()
            except Exception:
                log.exception("%s failed; retrying", self.what)
                await asyncio.sleep(self.retry_s)
                self._dirty.set()
