"""Secret files on disk: written 0600 atomically, and refused when others can read them.

Every private key and credential Ratline keeps (the CA key, the token key, the admin
token) goes through here, so the permission rule lives in one place.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


class InsecureFileError(PermissionError):
    """A secret file is readable or writable by group or others; the message says how to fix it."""


def check_private(path: Path) -> None:
    """Refuse a secret file that anyone but its owner may read or write."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise InsecureFileError(
            f"{path} has mode {mode:04o}: a private key or credential must be readable by its "
            f"owner only; run `chmod 600 {path}`"
        )


def read_private(path: Path) -> bytes:
    """A secret file's bytes after `check_private`."""
    check_private(path)
    return path.read_bytes()


def write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` with mode 0600 (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def make_private_dir(path: Path) -> None:
    """Create a directory only its owner can enter (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def load_or_create_secret(path: Path, create: bytes) -> bytes:
    """The secret in `path` (checked 0600), written from `create` the first time."""
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return read_private(path)
        try:
            os.write(fd, create)
        finally:
            os.close(fd)
        return create
    return read_private(path)
