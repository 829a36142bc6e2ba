"""Bearer tokens: random secrets shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.intake.adapters import tables as t

Role = Literal["clerk", "supervisor", "admin"]
ROLES: tuple[Role, ...] = ("clerk", "supervisor", "admin")


@dataclass(frozen=True)
class Principal:
    """Who is calling: a clerk (cán bộ một cửa), a supervisor (lãnh đạo) or an admin."""

    id: str
    role: Role
    agency_code: str | None

    def sees_agency(self, agency_code: str | None) -> bool:
        return self.role == "admin" or (agency_code is not None and agency_code == self.agency_code)


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


async def find_principal(conn: AsyncConnection, token: str) -> Principal | None:
    row = (
        await conn.execute(
            sa.select(t.tokens.c.id, t.tokens.c.role, t.tokens.c.agency_code).where(
                t.tokens.c.token_hash == token_hash(token), t.tokens.c.revoked_at.is_(None)
            )
        )
    ).first()
    return Principal(row.id, row.role, row.agency_code) if row else None
