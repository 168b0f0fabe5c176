"""The runner's NACK watch: polls the control plane's proxy status and logs each config a
proxy rejects, once (the thin async side of `nacks.NackLog`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ratline.runtime.local.cpclient import AdminClient, ControlPlaneUnavailable
from ratline.runtime.local.nacks import NackLog, resource_names

log = logging.getLogger("ratline.runner")

NACK_POLL_S = 1.0
"""How often the runner looks for config a proxy rejected."""


class NackWatch:
    """Logs new NACKs (warning, with the resource) and types accepted again (info)."""

    def __init__(self, client: Callable[[], AdminClient | None]) -> None:
        self._client = client
        """The admin client, or None while the control plane is not up."""
        self._nacks = NackLog()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(NACK_POLL_S)
            await self.check()

    async def check(self) -> None:
        client = self._client()
        if client is None:
            return
        try:
            answer = await client.proxy_status()
        except ControlPlaneUnavailable as exc:
            log.debug("proxy status: %s", exc)
            return
        new, accepted = self._nacks.update(answer)
        for nack in new:
            try:
                dump = await client.config_dump(nack.node, nack.type_name)
            except ControlPlaneUnavailable:
                dump = {}
            log.warning("%s", nack.line(resource_names(dump.get("resources") or ())))
        for line in accepted:
            log.info("%s", line)
