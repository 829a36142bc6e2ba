"""Secrets `motcua up` keeps in its data dir when the setting is unset: the gateways'
callback token (services.notifier.callback_token), the internal token of the routes the
intake asks the notifier on (MOTCUA_INTERNAL_TOKEN) and the key of the citizens' links
(MOTCUA_LINK_SECRET, services.intake.link_mac).

Each is one file (`<data_dir>/<name>`, readable by its owner only), made on first start and
reused on every restart: what was handed out with it (callback URLs given to the gateways,
the token passed to the second process, rating links sent by SMS) must keep working, so a new
one at each start would break them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(data_dir: Path, name: str) -> tuple[str, Path, bool]:
    """The secret kept in ``data_dir/name``, made on first use: (secret, its file, made now)."""
    path = data_dir / name
    existing = _read(path)
    if existing:
        return existing, path, False
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)  # 256 bits; URL-safe, so it needs no quoting as ?token=
    # Written whole to a private temporary file, then linked into place: a second process
    # starting at the same moment either wins the link or reads the winner's secret, never a
    # half-written one.
    temporary = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secret + "\n")
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raced = _read(path)
            if raced:
                return raced, path, False
            os.replace(temporary, path)  # a blank file, left by hand: this secret replaces it
        return secret, path, True
    finally:
        temporary.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None
