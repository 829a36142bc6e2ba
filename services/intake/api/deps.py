"""FastAPI dependencies: the context, the caller, the role checks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.intake.adapters.tokens import Principal, Role, find_principal
from services.intake.api.errors import ApiError
from services.intake.context import IntakeContext

_bearer = HTTPBearer(auto_error=False, description="token from `motcua token create`")


def context_of(request: Request) -> IntakeContext:
    """The intake's context, which app.py keeps on the application."""
    ctx: IntakeContext = request.app.state.intake
    return ctx


async def context(request: Request) -> IntakeContext:
    # async: FastAPI runs a plain `def` dependency in a worker thread, a hop that every
    # request paid (about 1 ms of CPU a POST /dossiers, bench/README.md).
    return context_of(request)


Ctx = Annotated[IntakeContext, Depends(context)]


async def principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # The context is read here, not through `Ctx`: every dependency is a node FastAPI walks
    # on each request (POST /dossiers paid about a fifth of its CPU solving them).
    ctx = context_of(request)
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "unauthorized", "missing bearer token", "Authorization")
    found = await principal_of_token(ctx, credentials.credentials)
    if found is None:
        raise ApiError(401, "unauthorized", "unknown or revoked token", "Authorization")
    return found


async def principal_of_token(ctx: IntakeContext, token: str) -> Principal | None:
    """Who holds ``token``, None for an unknown or revoked one: the bearer header's check, and
    the dashboard's sign-in cookie's (web.dashboard)."""

    async def look_up() -> Principal | None:
        async with ctx.engine.connect() as conn:
            return await find_principal(conn, token)

    return await ctx.principals.get(token, look_up)


Caller = Annotated[Principal, Depends(principal)]


def require(*roles: Role) -> Any:
    """The caller, refused unless of one of `roles`: `caller: Annotated[Principal,
    require(...)]`, or in a route's `dependencies` when the route needs not know who."""

    async def check(caller: Caller) -> Principal:
        if caller.role not in roles:
            raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
        return caller

    return Depends(check)


# A clerk or an admin, as a route's `caller` parameter: one dependency to solve, where
# `dependencies=[require(...)]` beside `caller: Caller` made two.
CLERK_ROLES: tuple[Role, ...] = ("clerk", "admin")
Clerk = Annotated[Principal, require(*CLERK_ROLES)]
