"""What the intake's entry points share: engine, calendars, clock, relay. Built by app.py."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.core.calendars import CalendarBook
from services.core.domain.calendar import OfficeSchedule
from services.core.runtime.clock import Clock
from services.core.runtime.group_commit import GroupCommit
from services.core.runtime.proxies import TrustedProxies
from services.core.runtime.read_cache import ReadCache
from services.core.runtime.settings import Settings
from services.intake.adapters import catalogue_store, repository
from services.intake.adapters.tokens import Principal
from services.intake.domain.model import Procedure

# How long a process takes a token it has looked up as still valid: `motcua token revoke`
# takes effect within this on every replica. A lookup costs a transaction (1.4-1.7 ms of CPU
# on SQLite and PostgreSQL, measured, against 0.3 us for a hit: about a fifth of a POST
# /dossiers), so a client sending many requests a second pays it once a second, not each time.
TOKEN_CACHE_SECONDS = 1.0
# How long the receipts' batcher, when idle, waits for more receipts to share a transaction
# (core.runtime.group_commit, `linger`): 10 ms at most on a clerk's answer, for a fifth to a
# third less of the intake's CPU a dossier at 200 a second (bench/README.md).
RECEIPT_LINGER_SECONDS = 0.01
# And, when receipts come one by one (clerks at many counters, not a client waiting for each
# answer), how long after the first of them it goes on gathering, up to eight (`trickle`):
# 25 ms at most on a clerk's answer; at 200 receipts a second a transaction then holds five
# or six dossiers, not one or two: a fifth to a third less of the intake's CPU a dossier,
# 7-23% less over every process of the three-process PostgreSQL shape (docs/operations.md,
# "Performance").
RECEIPT_TRICKLE_SECONDS = 0.025
RECEIPT_TRICKLE_BATCH = 8


class PrincipalCache(ReadCache[str, Principal]):
    """Known tokens for at most `ttl_seconds` (≤ 1 s: revocation must reach every replica
    within a second), so a burst of requests costs one token lookup, not one each, and a
    token in steady use is looked up again in the background (core.runtime.read_cache)."""

    def __init__(
        self,
        ttl_seconds: float = TOKEN_CACHE_SECONDS,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ttl_seconds, max_entries=max_entries, monotonic=monotonic)


@dataclass(frozen=True)
class CatalogueEntry:
    """A procedure with its agency's office schedule: what a receipt needs of the catalogue."""

    procedure: Procedure
    schedule: dict[str, Any]

    @cached_property
    def office_schedule(self) -> OfficeSchedule | None:
        # Parsed once per entry, not once per receipt (CalendarBook.for_schedule_dict keys
        # its cache on the dict as JSON, a cost each POST /dossiers paid).
        return OfficeSchedule.from_dict(self.schedule) if self.schedule else None


class CatalogueCache:
    """Procedures and their agencies' schedules for a few seconds, so that a POST /dossiers
    does not read the catalogue twice. This process forgets it whenever it changes the
    catalogue itself (`invalidate`); a change made by another replica is seen after at
    most `ttl_seconds`, as an admin's edit on one replica already took that long to reach
    the others' calendar overrides. Unknown procedures are not remembered: one created a
    moment ago on another replica is found at once. No request waits for an entry in
    steady use to be read again (core.runtime.read_cache)."""

    def __init__(self, ttl_seconds: float = 5.0, max_entries: int = 10_000) -> None:
        self._cache: ReadCache[str, CatalogueEntry] = ReadCache(
            ttl_seconds, max_entries=max_entries
        )

    async def get(self, engine: AsyncEngine, code: str) -> CatalogueEntry | None:
        return await self._cache.get(code, lambda: self._read(engine, code))

    async def _read(self, engine: AsyncEngine, code: str) -> CatalogueEntry | None:
        async with engine.connect() as conn:
            procedure = await catalogue_store.get_procedure(conn, code)
            if procedure is None:
                return None
            agency = await catalogue_store.get_agency(conn, procedure.agency_code)
        return CatalogueEntry(procedure, (agency.office_schedule if agency else None) or {})

    def invalidate(self) -> None:
        self._cache.forget()


@dataclass
class IntakeContext:
    settings: Settings
    engine: AsyncEngine
    clock: Clock
    calendars: CalendarBook = field(default_factory=CalendarBook)
    principals: PrincipalCache = field(default_factory=PrincipalCache)
    # Parsed once from the settings (core.runtime.proxies): the public lookup asks each request.
    proxies: TrustedProxies = field(init=False)
    catalogue: CatalogueCache = field(default_factory=CatalogueCache)
    wake_relay: Callable[[], None] = lambda: None
    # POST /dossiers writes through this, one transaction per batch of requests (app.py).
    dossier_writes: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.proxies = self.settings.proxies
        self.dossier_writes = GroupCommit(
            self.engine,
            on_commit=lambda: self.wake_relay(),
            counters=repository.CODE_COUNTERS,
            linger=RECEIPT_LINGER_SECONDS,
            trickle=RECEIPT_TRICKLE_SECONDS,
            trickle_batch=RECEIPT_TRICKLE_BATCH,
        )
