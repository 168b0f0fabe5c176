"""Unit tests of the leader's writers' loop (`ratline.kube.reconcile`)."""

from __future__ import annotations

import asyncio

from ratline.kube.reconcile import Reconciler


class Counting(Reconciler):
    def __init__(self, fail_first: bool = False) -> None:
        super().__init__(debounce_s=0.05, retry_s=0.01)
        self.calls = 0
        self.fail_first = fail_first
        self.done = asyncio.Event()

    async def reconcile(self) -> None:
        self.calls += 1
        if self.fail_first and self.calls == 1:
            raise RuntimeError("the API server is away")
        self.done.set()


async def _run(writer: Counting, marks: int) -> int:
    task = asyncio.create_task(writer.run())
    try:
        await asyncio.wait_for(writer.done.wait(), 5)
        writer.done.clear()
        for _ in range(marks):
            writer.mark_dirty()
        await asyncio.wait_for(writer.done.wait(), 5)
        return writer.calls
    finally:
        task.cancel()


def test_a_burst_of_marks_is_one_reconcile() -> None:
    assert asyncio.run(_run(Counting(), marks=10)) == 2


def test_a_failure_is_retried() -> None:
    assert asyncio.run(_run(Counting(fail_first=True), marks=1)) == 3
