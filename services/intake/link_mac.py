"""The unguessable part of a link sent to a citizen: an HMAC of the dossier's id.

The rating link (`/danh-gia/<code>/<mac>`, services.intake.web.urls) is made by the notifier
when it texts the citizen that her result was returned, and checked by the intake when she
opens it. Neither stores it and they need not talk: both hold MOTCUA_LINK_SECRET and compute
the same HMAC-SHA256 of the dossier's id, cut to 16 URL-safe characters (96 bits: guessing
one is hopeless, and it keeps the SMS short). The code in the link says which dossier; the
MAC, that whoever holds the link was sent it. A purpose goes into the MAC, so a MAC made for
one kind of link is no good for another under the same secret.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MAC_LENGTH = 16  # characters; 12 bytes of the digest in base64url, no padding
_MAC_BYTES = MAC_LENGTH * 3 // 4
RATING = "rating"


def link_mac(secret: str, dossier_id: str, purpose: str = RATING) -> str:
    """The MAC of ``dossier_id`` for ``purpose`` under ``secret``: 16 characters of
    [A-Za-z0-9_-], the same in every process that holds the secret."""
    if not secret:
        raise ValueError("a link MAC needs a secret")
    message = f"motcua:{purpose}:{dossier_id}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).decode("ascii")


def link_mac_matches(secret: str, dossier_id: str, mac: str, purpose: str = RATING) -> bool:
    """Whether ``mac`` is the one made for this dossier; compared in constant time, so the
    time taken tells nothing of how much of a forged MAC was right."""
    expected = link_mac(secret, dossier_id, purpose)
    return hmac.compare_digest(expected.encode(), mac.encode("utf-8", "replace"))
