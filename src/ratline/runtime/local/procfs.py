"""What Linux's /proc says about processes: who a PID is, and who listens on a port.

- `start_ticks(pid)`: when the process started (clock ticks since boot, /proc/PID/stat
  field 22). With the PID it identifies one process for the machine's uptime: a PID
  reused by another program has another start time. The runner records it beside every
  PID in run.json, so a later command can tell its processes from strangers.
- `listeners(port)`: the processes with a listening TCP socket on a port (socket inodes
  of /proc/net/tcp{,6} matched against /proc/PID/fd), to name the program that holds a
  port the mesh needs.

Every function answers "unknown" (None or []) where /proc cannot tell (not Linux, a
process of another user).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TCP_LISTEN = "0A"


def start_ticks(pid: int, proc: Path = PROC) -> int | None:
    """The process's start time in clock ticks after boot; None if it cannot be read."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or parentheses.
    fields = stat.rpartition(")")[2].split()
    try:
        return int(fields[19])  # field 22 overall: 3 is fields[0]
    except (IndexError, ValueError):
        return None


def command_line(pid: int, proc: Path = PROC) -> str | None:
    """The process's command line, arguments joined by spaces; None if unreadable."""
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part) or None


@dataclass(frozen=True)
class PortHolder:
    pid: int
    command: str

    def describe(self) -> str:
        return f"PID {self.pid} ({self.command})"


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            local_port = fields[1].rpartition(":")[2]
            if int(local_port, 16) == port:
                inodes.add(fields[9])
    return inodes


def listeners(port: int, proc: Path = PROC) -> list[PortHolder]:
    """The processes (that this user may look into) listening on TCP `port`."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return []
    wanted = {f"socket:[{inode}]" for inode in inodes}
    holders = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(entry / "fd" / fd)
            except OSError:
                continue
            if target in wanted:
                pid = int(entry.name)
                holders.append(PortHolder(pid, command_line(pid, proc) or "?"))
                break
    return sorted(holders, key=lambda h: h.pid)


def describe_port_holders(port: int, proc: Path = PROC) -> str:
    """`in use by PID 1234 (python3 -m http.server 8080)`, or what can be said."""
    holders = listeners(port, proc)
    if holders:
        return "in use by " + ", ".join(h.describe() for h in holders)
    if _listening_inodes(port, proc):
        return "in use by a process of another user"
    return "in use"
