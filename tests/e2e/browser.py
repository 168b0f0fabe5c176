"""A real headless Chromium (Debian's `chromium`) driven by Playwright, for the dashboard.

Playwright comes from PyPI without its own browsers; it drives the system Chromium by
`executable_path`, with the flags this closed network needs (no background networking,
no component updates, no sync). Screenshots go to `.ci/artifacts/dashboard/` (gitignored),
which CI keeps as artifacts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.tools import tool

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / ".ci" / "artifacts" / "dashboard"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextmanager
def chromium() -> Iterator[Any]:
    """A launched browser (stopped at exit), with a fresh profile directory."""
    from playwright.sync_api import sync_playwright

    with (tempfile.TemporaryDirectory(prefix="ratline-chromium-") as profile,
          sync_playwright() as pw):
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=tool("chromium"),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 820},
        )
        try:
            yield context
        finally:
            context.close()


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
