"""Applying capture rules with the real `iptables-restore` (the init container's IO).

`--noflush` keeps whatever else the pod's network namespace holds; the rules are
`ratline.agent.capture.nat_rules`. A restarted init container applies them again: the
jumps into the ISTIO_* chains are deleted first (declaring a chain in the restore input
flushes it), so rules are replaced, never doubled.
"""

from __future__ import annotations

import shutil
import subprocess

RESTORE = "iptables-restore"
IPTABLES = "iptables"
JUMPS = (("PREROUTING", "ISTIO_INBOUND"), ("OUTPUT", "ISTIO_OUTPUT"))
MAX_DELETES = 100


class IptablesError(RuntimeError):
    """`iptables-restore` is missing or refused the rules; the message has its output."""


def apply_rules(rules: str, binary: str = RESTORE) -> None:
    path = shutil.which(binary)
    if path is None:
        raise IptablesError(f"{binary} not found (install the iptables package)")
    remove_jumps(shutil.which(IPTABLES) or IPTABLES)
    proc = subprocess.run(
        [path, "--noflush"], input=rules, text=True, capture_output=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise IptablesError(f"{binary} failed ({proc.returncode}): {proc.stderr.strip()}")


def remove_jumps(iptables: str) -> None:
    """Delete earlier runs' jumps into the capture chains (none is fine)."""
    for chain, target in JUMPS:
        for _ in range(MAX_DELETES):
            proc = subprocess.run(
                [iptables, "-t", "nat", "-D", chain, "-p", "tcp", "-j", target],
                capture_output=True, timeout=30, check=False,
            )
            if proc.returncode != 0:
                break
