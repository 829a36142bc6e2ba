"""Addresses of the pages citizens are sent to, built in one place: the receipt slip's QR code,
the texts and the pages' own links must agree."""

from __future__ import annotations

from urllib.parse import quote

LOOKUP_PATH = "/tra-cuu"
DASHBOARD_PATH = "/bang-dieu-khien"  # the supervisors' dashboard (web.dashboard)


def lookup_url(public_url: str, code: str | None = None) -> str:
    """The citizen's lookup page, with the dossier's code filled in when given."""
    base = public_url.rstrip("/") + LOOKUP_PATH
    return f"{base}?code={quote(code, safe='')}" if code else base


RATING_PATH = "/danh-gia"


def rating_url(public_url: str, code: str, mac: str) -> str:
    """The rating page of one returned dossier (services.intake.web.rating): its code, then
    the MAC that proves the link was sent (services.intake.link_mac)."""
    return f"{public_url.rstrip('/')}{RATING_PATH}/{quote(code, safe='')}/{mac}"
