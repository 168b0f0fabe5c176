"""Restart backoff: doubles per consecutive crash up to the max, reset by a healthy run."""

from __future__ import annotations

import asyncio

import pytest

from ratline.runtime.local.supervisor import Backoff, RestartPolicy, sleep_unless
from ratline.settings import Settings


def test_delays_double_up_to_the_max() -> None:
    backoff = Backoff(RestartPolicy(initial_s=0.2, max_s=1.0, healthy_after_s=60))
    delays = [backoff.on_exit(ran_for_s=0.1) for _ in range(6)]
    assert delays == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0, 1.0])
    assert backoff.restarts == 6


def test_a_healthy_run_resets_the_delay() -> None:
    backoff = Backoff(RestartPolicy(initial_s=0.5, max_s=10, healthy_after_s=60))
    backoff.on_exit(1)
    backoff.on_exit(1)
    assert backoff.on_exit(1) == pytest.approx(2.0)
    assert backoff.on_exit(61) == pytest.approx(0.5)
    assert backoff.on_exit(1) == pytest.approx(1.0)
    assert backoff.restarts == 5


def test_huge_failure_counts_stay_at_the_max() -> None:
    assert RestartPolicy(0.2, 10).delay(10_000) == 10


def test_policy_from_settings() -> None:
    policy = RestartPolicy.from_settings(
        Settings(restart_backoff_initial_s=0.1, restart_backoff_max_s=3)
    )
    assert (policy.initial_s, policy.max_s) == (0.1, 3)


async def test_sleep_unless_returns_early_when_the_event_is_set() -> None:
    event = asyncio.Event()
    asyncio.get_running_loop().call_soon(event.set)
    assert await sleep_unless(event, 30) is True
    assert await sleep_unless(asyncio.Event(), 0.01) is False
