"""Signing in to the dashboard: the token in a cookie, and the CSRF token of its forms.

A supervisor or admin types the token `motcua token create` gave them; it is kept in a cookie
the page's scripts cannot read (HttpOnly; the pages run no script anyway), that no other site's
page can make the browser send (SameSite=Strict), sent over HTTPS only when the dashboard is
reached over HTTPS (Secure), and sent to the dashboard's own paths only (Path). The JSON API
never reads it: it takes the bearer header alone (api.deps), so a page elsewhere can make no
API call with a supervisor's cookie.

The sign-in and sign-out forms are POSTs carrying a CSRF token (double submit): a random
value in a cookie of its own, repeated in a hidden field, that a page of another site can
neither read nor set. A sign-in without it is refused, so nobody can sign a supervisor's
browser into another token either.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from services.intake.context import IntakeContext
from services.intake.web.urls import DASHBOARD_PATH

SIGN_IN_PATH = f"{DASHBOARD_PATH}/dang-nhap"
SIGN_OUT_PATH = f"{DASHBOARD_PATH}/dang-xuat"
SESSION_COOKIE = "motcua_dashboard"
CSRF_COOKIE = "motcua_csrf"
CSRF_FIELD = "csrf"
TOKEN_MAX = 200  # as the callbacks' and the internal token's headers; ours are 43 characters


def session_token(request: Request) -> str | None:
    token = request.cookies.get(SESSION_COOKIE, "")
    return token if 0 < len(token) <= TOKEN_MAX else None


def csrf_token(request: Request) -> str:
    """The CSRF token the page's forms carry: the browser's own, or a new one (set_csrf)."""
    held = request.cookies.get(CSRF_COOKIE, "")
    return held if _well_formed(held) else secrets.token_urlsafe(32)


def csrf_ok(request: Request, sent: str | None) -> bool:
    held = request.cookies.get(CSRF_COOKIE, "")
    if not (_well_formed(held) and sent):
        return False
    return hmac.compare_digest(held.encode(), sent.encode("utf-8", "replace"))


def _well_formed(value: str) -> bool:
    # What secrets.token_urlsafe(32) makes: 43 URL-safe characters.
    return (
        len(value) == 43 and value.isascii() and value.replace("-", "").replace("_", "").isalnum()
    )


def _secure(request: Request, ctx: IntakeContext) -> bool:
    # Behind a proxy that ends TLS, the request is plain HTTP: MOTCUA_PUBLIC_URL says https.
    public = (ctx.settings.public_url or "").lower()
    return request.url.scheme == "https" or public.startswith("https://")


def _set(response: Response, request: Request, ctx: IntakeContext, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=DASHBOARD_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request, ctx),
    )


def set_csrf(response: Response, request: Request, ctx: IntakeContext, token: str) -> None:
    if request.cookies.get(CSRF_COOKIE) != token:
        _set(response, request, ctx, CSRF_COOKIE, token)


def sign_in(response: Response, request: Request, ctx: IntakeContext, token: str) -> None:
    """Keep the token, and a fresh CSRF token: the one seen before signing in goes."""
    _set(response, request, ctx, SESSION_COOKIE, token)
    _set(response, request, ctx, CSRF_COOKIE, secrets.token_urlsafe(32))


def sign_out(response: Response, request: Request, ctx: IntakeContext) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path=DASHBOARD_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request, ctx),
    )
