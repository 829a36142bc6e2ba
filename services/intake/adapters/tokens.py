"""Bearer tokens: random secrets shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.adapters import tables as t
from services.intake.domain.access import ROLES, Principal, Role

__all__ = ["ROLES", "Principal", "Role"]  # with the functions below

log = structlog.get_logger("motcua.intake")


def token_hash(token: str) -> str:
    # The tokens are 256-bit random secrets, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    conn: AsyncConnection, role: Role, agency_code: str | None, name: str | None, now: datetime
) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role != "admin" and not agency_code:
        raise ValueError(f"a {role} token needs --agency")
    token = "mc_" + secrets.token_urlsafe(32)
    await conn.execute(
        t.tokens.insert().values(
            id=str(uuid.uuid4()),
            token_hash=token_hash(token),
            role=role,
            agency_code=agency_code,
            name=name,
            created_at=now,
        )
    )
    return token


def principal_of(token_id: str, role: str, agency_code: str | None) -> Principal | None:
    """The caller a stored token stands for, or None when its row makes no sense: a role this
    code does not know, or a clerk or supervisor of no agency (whose checks compare agencies,
    so a missing one must not slip through one of them). Refused, never guessed."""
    if role not in ROLES:
        return None
    if role != "admin" and not agency_code:
        return None
    return Principal(token_id, role, agency_code)  # type: ignore[arg-type]


async def find_principal(conn: AsyncConnection, token: str) -> Principal | None:
    row = (
        await conn.execute(
            sa.select(t.tokens.c.id, t.tokens.c.role, t.tokens.c.agency_code).where(
                t.tokens.c.token_hash == token_hash(token), t.tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    found = principal_of(row.id, row.role, row.agency_code)
    if found is None:
        log.warning("token_refused_malformed", token_id=row.id, role=row.role[:16])
    return found


@dataclass(frozen=True)
class TokenInfo:
    """What `motcua token list` shows of a token: never the secret, nor its hash."""

    id: str
    role: str
    agency_code: str | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


async def list_tokens(conn: AsyncConnection) -> list[TokenInfo]:
    c = t.tokens.c
    rows = await conn.execute(
        sa.select(c.id, c.role, c.agency_code, c.name, c.created_at, c.revoked_at).order_by(
            c.created_at, c.id
        )
    )
    return [TokenInfo(*row) for row in rows]


async def revoke_token(conn: AsyncConnection, token_id: str, now: datetime) -> TokenInfo | None:
    """Revoke the token (kept, with the time, for the record); None when there is no such id.
    A token revoked before keeps its first time."""
    c = t.tokens.c
    await conn.execute(
        t.tokens.update().where(c.id == token_id, c.revoked_at.is_(None)).values(revoked_at=now)
    )
    row = (
        await conn.execute(
            sa.select(c.id, c.role, c.agency_code, c.name, c.created_at, c.revoked_at).where(
                c.id == token_id
            )
        )
    ).first()
    return TokenInfo(*row) if row else None


async def agency_is_known(conn: AsyncConnection, agency_code: str) -> bool:
    """Whether the intake has a record of the agency or a procedure of it."""
    for table, column in (
        (t.agencies, t.agencies.c.code),
        (t.procedures, t.procedures.c.agency_code),
    ):
        found = await conn.execute(
            sa.select(sa.literal(1)).select_from(table).where(column == agency_code).limit(1)
        )
        if found.first() is not None:
            return True
    return False
