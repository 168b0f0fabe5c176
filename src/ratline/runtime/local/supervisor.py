"""Restart policy for crashed children: exponential backoff, forgiven after a healthy run.

Pure and clock-free: callers pass how long the process ran. A process that ran at least
`healthy_after_s` starts again from the initial delay; otherwise each crash doubles the
delay up to the maximum (Kubernetes' CrashLoopBackOff, with laptop-sized numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from ratline.settings import Settings

HEALTHY_RUN_S = 60.0


@dataclass(frozen=True)
class RestartPolicy:
    initial_s: float = 0.2
    max_s: float = 10.0
    healthy_after_s: float = HEALTHY_RUN_S

    @classmethod
    def from_settings(cls, settings: Settings) -> RestartPolicy:
        return cls(settings.restart_backoff_initial_s, settings.restart_backoff_max_s)

    def delay(self, consecutive_failures: int) -> float:
        """Delay before the restart that follows the n-th consecutive crash (n ≥ 1)."""
        exponent = max(0, consecutive_failures - 1)
        # Cap the exponent so huge failure counts cannot overflow the float.
        return min(self.initial_s * (2 ** min(exponent, 60)), self.max_s)


class Backoff:
    """The restart state of one supervised process."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.consecutive_failures = 0
        self.restarts = 0

    def on_exit(self, ran_for_s: float) -> float:
        """Record an unexpected exit after `ran_for_s` seconds; the delay before restarting."""
        if ran_for_s >= self.policy.healthy_after_s:
            self.consecutive_failures = 0
        self.consecutive_failures += 1
        self.restarts += 1
        return self.policy.delay(self.consecutive_failures)


def should_restart(restart_policy: str, exit_code: int) -> bool:
    """Kubernetes' rule: Always restarts, OnFailure only after a non-zero exit, Never never."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True


async def sleep_unless(event: asyncio.Event, delay_s: float) -> bool:
    """Sleep `delay_s` unless `event` is set first; True if the event was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), delay_s)
    return event.is_set()
