"""A shared secret kept in the data dir when its setting is unset: made once, private, reused.

`motcua up` keeps two this way: the gateways' callback token (services.notifier.callback_token)
and the internal token of the routes the intake asks the notifier on (MOTCUA_INTERNAL_TOKEN).
Each is reused on restart: a secret handed out before (in a callback URL, to the second
process) must still be the one checked.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(data_dir: Path, file_name: str) -> tuple[str, Path, bool]:
    """The secret kept in ``data_dir/file_name``, made on first use: (secret, its file, made
    now)."""
    path = data_dir / file_name
    existing = _read(path)
    if existing:
        return existing, path, False
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)  # 256 bits; URL-safe, so it needs no quoting as ?token=
    # Written whole to a private temporary file, then linked into place: a second process
    # starting at the same moment either wins the link or reads the winner's token, never a
    # half-written one.
    temporary = data_dir / f".{file_name}.{os.getpid()}.{secrets.token_hex(4)}"
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
