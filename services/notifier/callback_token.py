"""The shared secret of the gateways' callbacks when MOTCUA_CALLBACK_TOKEN is not set.

`motcua up`, and `motcua notifier` bound to loopback, keep one in the data dir
(`<data_dir>/callback_token`, readable by its owner only) and reuse it on restart: the
callback URLs handed to the gateways with earlier SMS and orders carry it, so a new one at
each start would make their receipts bounce.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

FILE_NAME = "callback_token"
LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether a server bound to ``host`` can be reached from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_or_create(data_dir: Path) -> tuple[str, Path, bool]:
    """The token kept in ``data_dir``, made on first use: (token, its file, made now)."""
    path = data_dir / FILE_NAME
    existing = _read(path)
    if existing:
        return existing, path, False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)  # 256 bits; URL-safe, so it needs no quoting as ?token=
    # Written whole to a private temporary file, then linked into place: a second process
    # starting at the same moment either wins the link or reads the winner's token, never a
    # half-written one.
    temporary = data_dir / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(token + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raced = _read(path)
            if raced:
                return raced, path, False
            os.replace(temporary, path)  # a blank file, left by hand: this token replaces it
        return token, path, True
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
