"""The shared secret of the gateways' callbacks when MOTCUA_CALLBACK_TOKEN is not set.

`motcua up`, and `motcua notifier` bound to loopback, keep one in the data dir
(`<data_dir>/callback_token`, readable by its owner only, services.core.runtime.kept_secrets)
and reuse it on restart: the callback URLs handed to the gateways with earlier SMS and orders
carry it, so a new one at each start would make their receipts bounce.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from services.core.runtime import kept_secrets

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
    return kept_secrets.load_or_create(data_dir, FILE_NAME)
