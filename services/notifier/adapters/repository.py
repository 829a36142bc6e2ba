"""Reading and writing the notifier's tables. Every function runs in the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.domain.calendar import CalendarOverride, DayKind
from services.core.domain.deadline_projection import DeadlineMark
from services.core.domain.lifecycle import PENDING_STATUSES
from services.core.phones import mask_phone
from services.core.runtime.database import dialect_insert, moves_forward
from services.notifier.adapters import tables as t
from services.notifier.domain import channels
from services.notifier.domain.channels import SMS, ZALO, Channel, Effect, Move
from services.notifier.domain.decisions import (
    AgencyDigest,
    Contact,
    DossierCard,
    PendingAlert,
    PostalOrderDraft,
)

NOTICE_ID_NAMESPACE = uuid.UUID("2f4d8c1e-3b6a-4e0f-9d71-6d6f74637561")
OPEN = [s.value for s in PENDING_STATUSES]


def notice_id(source_key: str, recipient: str, template: str) -> str:
    """The notice's identity, stable across redeliveries and restarts: the gateway's
    request_id, so a notice sent again after a crash is recognised as the same message."""
    return str(uuid.uuid5(NOTICE_ID_NAMESPACE, f"{source_key}|{recipient}|{template}"))


# -- dossiers -------------------------------------------------------------------------------


def _card_of(row: Any) -> DossierCard:
    return DossierCard(
        dossier_id=row.dossier_id,
        code=row.code,
        agency_code=row.agency_code,
        procedure_name=row.procedure_name,
        applicant=Contact(row.applicant_name, row.phone),
        return_method=row.return_method,
        return_address=row.return_address,
        status=row.status,
        handling_agency=row.handling_agency,
    )


async def load_card(conn: AsyncConnection, dossier_id: str) -> DossierCard | None:
    return (await load_cards(conn, [dossier_id])).get(dossier_id)


async def load_cards(conn: AsyncConnection, dossier_ids: Iterable[str]) -> dict[str, DossierCard]:
    """The cards of those dossiers the notifier knows, in one query."""
    ids = sorted(set(dossier_ids))
    if not ids:
        return {}
    rows = await conn.execute(sa.select(t.dossiers).where(t.dossiers.c.dossier_id.in_(ids)))
    return {row.dossier_id: _card_of(row) for row in rows}


def as_stored(card: DossierCard) -> DossierCard:
    """The card as `load_card` would read it back after `save_cards` (names cut to their
    columns), so that a batch deciding on cards it holds decides as on cards re-read."""
    if len(card.procedure_name) <= 300 and len(card.applicant.name) <= 200:
        return card
    applicant = Contact(card.applicant.name[:200], card.applicant.phone)
    return replace(card, procedure_name=card.procedure_name[:300], applicant=applicant)


async def save_card(conn: AsyncConnection, card: DossierCard, now: datetime) -> None:
    await save_cards(conn, [card], now)


async def save_cards(conn: AsyncConnection, cards: Iterable[DossierCard], now: datetime) -> None:
    """Insert or replace the cards (one per dossier), in one statement for the open ones and
    one for the finished ones, whose flag is cleared: a finished dossier is in no digest."""
    open_rows: list[dict[str, Any]] = []
    finished_rows: list[dict[str, Any]] = []
    for card in cards:
        stored = as_stored(card)
        (open_rows if card.status in OPEN else finished_rows).append(
            {
                "dossier_id": stored.dossier_id,
                "code": stored.code,
                "agency_code": stored.agency_code,
                "procedure_name": stored.procedure_name,
                "applicant_name": stored.applicant.name,
                "phone": stored.applicant.phone,
                "return_method": stored.return_method,
                "return_address": dict(stored.return_address) if stored.return_address else None,
                "status": stored.status,
                "handling_agency": stored.handling_agency,
                "updated_at": now,
            }
        )
    for rows, clear_flag in ((open_rows, False), (finished_rows, True)):
        if not rows:
            continue
        insert = dialect_insert(conn, t.dossiers)
        replaced = {name: insert.excluded[name] for name in rows[0] if name != "dossier_id"}
        if clear_flag:
            replaced["flag"] = None
        upsert = insert.on_conflict_do_update(index_elements=["dossier_id"], set_=replaced)
        await conn.execute(upsert, rows)


async def apply_mark(
    conn: AsyncConnection, dossier_id: str, mark: DeadlineMark, now: datetime
) -> bool:
    """Follow the tracker's flag for the digest, only forward (see deadline_projection)."""
    c = t.dossiers.c
    conditions = [
        c.dossier_id == dossier_id,
        moves_forward(c.deadline_version, c.deadline_rank, mark),
    ]
    if mark.flag:
        conditions.append(c.status.in_(OPEN))
    result = await conn.execute(
        t.dossiers.update()
        .where(*conditions)
        .values(
            due_at=mark.due_at,
            flag=mark.flag,
            deadline_version=mark.version,
            deadline_rank=mark.rank,
            updated_at=now,
        )
    )
    return bool(result.rowcount)


# The same conditional UPDATE as apply_mark, its mark in parameters, for executemany (which
# takes no expanding IN: the open statuses are one bound value each).
_MARK = SimpleNamespace(version=sa.bindparam("m_version"), rank=sa.bindparam("m_rank"))
_UNFLAGGED = sa.not_(sa.bindparam("m_flagged", type_=sa.Boolean))
_IS_OPEN = t.dossiers.c.status.in_([sa.literal(status) for status in OPEN])
_APPLY_MARK = (
    t.dossiers.update()
    .where(
        t.dossiers.c.dossier_id == sa.bindparam("m_dossier_id"),
        moves_forward(t.dossiers.c.deadline_version, t.dossiers.c.deadline_rank, _MARK),
        sa.or_(_UNFLAGGED, _IS_OPEN),
    )
    .values(
        due_at=sa.bindparam("m_due_at"),
        flag=sa.bindparam("m_flag"),
        deadline_version=_MARK.version,
        deadline_rank=_MARK.rank,
        updated_at=sa.bindparam("m_now"),
    )
)


async def apply_marks(
    conn: AsyncConnection, marks: Sequence[tuple[str, DeadlineMark]], now: datetime
) -> None:
    """apply_mark for each (dossier id, mark), in their order, in one executemany: each
    UPDATE checks the row as the ones before it left it, as one by one."""
    if not marks:
        return
    await conn.execute(
        _APPLY_MARK,
        [
            {
                "m_dossier_id": dossier_id,
                "m_version": mark.version,
                "m_rank": mark.rank,
                "m_flagged": mark.flag is not None,
                "m_due_at": mark.due_at,
                "m_flag": mark.flag,
                "m_now": now,
            }
            for dossier_id, mark in marks
        ],
    )


async def digests(conn: AsyncConnection, oldest: int = 5) -> list[AgencyDigest]:
    """Per agency with supervisors: open dossiers due soon, overdue, the oldest overdue."""
    c = t.dossiers.c
    counts = await conn.execute(
        sa.select(c.agency_code, c.flag, sa.func.count())
        .where(c.flag.is_not(None), c.status.in_(OPEN))
        .group_by(c.agency_code, c.flag)
    )
    by_agency: dict[str, dict[str, int]] = {}
    for agency, flag, count in counts:
        by_agency.setdefault(agency, {})[flag] = int(count)
    result = []
    for agency in sorted(by_agency):
        codes = (
            await conn.execute(
                sa.select(c.code)
                .where(c.agency_code == agency, c.flag == "overdue", c.status.in_(OPEN))
                .order_by(c.due_at, c.code)
                .limit(oldest)
            )
        ).scalars()
        flags = by_agency[agency]
        result.append(
            AgencyDigest(agency, flags.get("due_soon", 0), flags.get("overdue", 0), tuple(codes))
        )
    return result


# -- supervisors ----------------------------------------------------------------------------


async def replace_supervisors(
    conn: AsyncConnection, agency_code: str, people: Iterable[tuple[str, Contact]]
) -> None:
    await conn.execute(t.supervisors.delete().where(t.supervisors.c.agency_code == agency_code))
    rows = [
        {"agency_code": agency_code, "supervisor_id": sid, "name": p.name, "phone": p.phone}
        for sid, p in people
    ]
    if rows:
        await conn.execute(t.supervisors.insert(), rows)


async def supervisors_of(conn: AsyncConnection, agency_code: str) -> list[Contact]:
    rows = await conn.execute(
        sa.select(t.supervisors.c.name, t.supervisors.c.phone)
        .where(t.supervisors.c.agency_code == agency_code)
        .order_by(t.supervisors.c.supervisor_id)
    )
    return [Contact(r.name, r.phone) for r in rows]


async def supervisors_of_agencies(
    conn: AsyncConnection, agency_codes: Iterable[str]
) -> dict[str, list[Contact]]:
    """supervisors_of for several agencies in one query; an agency without any is absent."""
    codes = sorted(set(agency_codes))
    if not codes:
        return {}
    c = t.supervisors.c
    rows = await conn.execute(
        sa.select(c.agency_code, c.name, c.phone)
        .where(c.agency_code.in_(codes))
        .order_by(c.agency_code, c.supervisor_id)
    )
    found: dict[str, list[Contact]] = {}
    for r in rows:
        found.setdefault(r.agency_code, []).append(Contact(r.name, r.phone))
    return found


async def save_agency_name(conn: AsyncConnection, agency_code: str, name: str) -> None:
    insert = dialect_insert(conn, t.agencies).values(agency_code=agency_code, name=name)
    await conn.execute(
        insert.on_conflict_do_update(index_elements=["agency_code"], set_={"name": name})
    )


async def agency_names(conn: AsyncConnection, codes: Iterable[str]) -> dict[str, str]:
    """The names of those agencies the directory has named; an agency it has not is absent
    (a text then shows its code)."""
    wanted = sorted(set(codes))
    if not wanted:
        return {}
    c = t.agencies.c
    rows = await conn.execute(sa.select(c.agency_code, c.name).where(c.agency_code.in_(wanted)))
    return {r.agency_code: r.name for r in rows}


# -- overdue alerts waiting to be true (decisions.PendingAlert) ------------------------------


def _alert_of(row: Any) -> PendingAlert:
    return PendingAlert(**{name: row._mapping[name] for name in _ALERT_FIELDS})


_ALERT_FIELDS = (
    "dossier_id",
    "kind",
    "dossier_code",
    "agency_code",
    "version",
    "step_number",
    "due_at",
    "overdue_minutes",
    "raised_at",
    "settle_until",
)


AlertKey = tuple[str, str]  # (dossier id, kind)


async def load_alerts(
    conn: AsyncConnection, dossier_ids: Iterable[str]
) -> dict[AlertKey, PendingAlert]:
    ids = sorted(set(dossier_ids))
    if not ids:
        return {}
    rows = await conn.execute(sa.select(t.alerts).where(t.alerts.c.dossier_id.in_(ids)))
    return {(row.dossier_id, row.kind): _alert_of(row) for row in rows}


async def save_alerts(
    conn: AsyncConnection,
    before: Mapping[AlertKey, PendingAlert],
    after: Mapping[AlertKey, PendingAlert],
) -> None:
    """Write what a run of deadline events made of the pending alerts it read (``before``):
    one delete for those taken away, one upsert for those set or replaced."""
    await delete_alerts(conn, [key for key in before if key not in after])
    changed = [a for key, a in after.items() if a != before.get(key)]
    if changed:
        insert = dialect_insert(conn, t.alerts)
        replaced = {name: insert.excluded[name] for name in _ALERT_FIELDS[2:]}
        await conn.execute(
            insert.on_conflict_do_update(index_elements=["dossier_id", "kind"], set_=replaced),
            [{name: getattr(a, name) for name in _ALERT_FIELDS} for a in changed],
        )


async def postpone_alerts(
    conn: AsyncConnection, dossier_ids: Iterable[str], until: datetime
) -> None:
    """News of these dossiers: their pending alerts wait until ``until`` (one statement)."""
    ids = sorted(set(dossier_ids))
    if ids:
        c = t.alerts.c
        await conn.execute(
            t.alerts.update()
            .where(c.dossier_id.in_(ids), c.settle_until < until)
            .values(settle_until=until)
        )


@dataclass(frozen=True)
class AlertDue:
    """A pending alert whose wait is over, with what is known of its dossier: the card and
    the card's deadline mark (version, rank)."""

    alert: PendingAlert
    card: DossierCard
    mark: tuple[int, int]


async def alerts_due(conn: AsyncConnection, now: datetime, limit: int) -> list[AlertDue]:
    """Pending alerts whose wait is over and whose dossier is known, oldest first. One whose
    dossier is not known yet keeps waiting (its text needs the procedure's name)."""
    a, d = t.alerts.c, t.dossiers.c
    query = (
        sa.select(t.alerts)
        .where(
            a.settle_until <= now,
            sa.exists().where(d.dossier_id == a.dossier_id),
        )
        .order_by(a.settle_until, a.dossier_id, a.kind)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # another replica takes the others
    alerts = [_alert_of(row) for row in await conn.execute(query)]
    if not alerts:
        return []
    rows = await conn.execute(
        sa.select(t.dossiers).where(d.dossier_id.in_([x.dossier_id for x in alerts]))
    )
    known = {row.dossier_id: row for row in rows}
    return [
        AlertDue(
            x,
            _card_of(known[x.dossier_id]),
            (known[x.dossier_id].deadline_version, known[x.dossier_id].deadline_rank),
        )
        for x in alerts
    ]


async def delete_alerts(conn: AsyncConnection, keys: Iterable[AlertKey]) -> None:
    """Delete those pending alerts, in one statement."""
    wanted = sorted(set(keys))
    if wanted:
        c = t.alerts.c
        await conn.execute(
            t.alerts.delete().where(
                sa.or_(*(sa.and_(c.dossier_id == d, c.kind == k) for d, k in wanted))
            )
        )


# -- notices --------------------------------------------------------------------------------


async def add_notice(conn: AsyncConnection, row: Mapping[str, Any], now: datetime) -> bool:
    """Insert a notice unless its identity exists; True when it is new (with its history)."""
    return bool(await add_notices(conn, [row], now))


async def add_notices(
    conn: AsyncConnection, rows: Sequence[Mapping[str, Any]], now: datetime
) -> set[str]:
    """Insert the notices whose identity is not stored yet, each with its first history row,
    in one statement each; returns the ids of those new. The INSERT ... ON CONFLICT DO NOTHING
    RETURNING is the de-duplication: a notice told before (an event delivered again, another
    replica that got there first) is simply not returned."""
    if not rows:
        return set()
    insert = dialect_insert(conn, t.notices).on_conflict_do_nothing().returning(t.notices.c.id)
    stamped = [{**row, "created_at": now, "updated_at": now} for row in rows]
    new = set((await conn.execute(insert, stamped)).scalars())
    history, told = [], set()
    for row in rows:  # in the order decided: the order of their history ids
        if row["id"] in new and row["id"] not in told:  # drafted twice in a run: one row
            told.add(row["id"])
            history.append(_history_row(row["id"], row["status"], now, row.get("error")))
    if history:
        await conn.execute(t.notice_history.insert(), history)
    return new


def _history_row(
    notice: str, status: str, at: datetime, detail: str | None = None
) -> dict[str, Any]:
    return {
        "notice_id": notice,
        "status": status,
        "at": at,
        "detail": detail[:200] if detail else None,
    }


async def add_history(
    conn: AsyncConnection, notice: str, status: str, at: datetime, detail: str | None = None
) -> None:
    await conn.execute(t.notice_history.insert().values(**_history_row(notice, status, at, detail)))


@dataclass(frozen=True)
class Outgoing:
    """A notice claimed for one attempt."""

    id: str
    recipient: str
    text: str
    unicode: bool
    attempts: int
    first_attempt_at: datetime | None
    gateway_index: int
    dossier_id: str | None
    channel: Channel = SMS
    zns: Mapping[str, Any] | None = None  # the ZNS's template and parameters


def _among(column: sa.ColumnElement[Any], states: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """``column IN ('held', …)`` with the states written out in the SQL, not bound: a partial
    index (ix_notifier_notices_due, _in_line) is used only when the query's condition is
    seen to imply the index's, and SQLite cannot see it through bound parameters (it
    scanned the whole table, sent notices and all, for every claim)."""
    return column.in_(sa.bindparam(None, list(states), expanding=True, literal_execute=True))


async def _claim_due(
    conn: AsyncConnection,
    table: sa.Table,
    key: str,
    waiting: tuple[str, ...],
    now: datetime,
    limit: int,
    lease: timedelta,
    *,
    in_turn: sa.ColumnElement[bool] | None = None,
    order: sa.ColumnElement[Any] | None = None,
) -> list[Any]:
    """Rows whose time has come, and those whose sender died mid-attempt (lease over),
    marked `sending` until `now + lease`: another sender leaves them alone meanwhile.
    `in_turn`, if given, is what else a row must meet; `order` breaks ties of due time."""
    c = table.c
    due = sa.or_(
        sa.and_(c.status.in_(waiting), c.next_attempt_at <= now),
        sa.and_(c.status == "sending", c.lease_until <= now),
    )
    query = (
        sa.select(table)
        .where(_among(c.status, (*waiting, "sending")), c.next_attempt_at.is_not(None), due)
        .order_by(c.next_attempt_at, order if order is not None else c.created_at)
        .limit(limit)
    )
    if in_turn is not None:
        query = query.where(in_turn)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await conn.execute(query)).all()
    if rows:
        await conn.execute(
            table.update()
            .where(c[key].in_([r._mapping[key] for r in rows]))
            .values(status="sending", lease_until=now + lease, updated_at=now)
        )
    return rows


_EARLIER = t.notices.alias("earlier")
# One dossier's notices to one person go out in the order they were decided (the order of the
# facts): a notice waits while an earlier one is still to be sent (held, pending, being
# sent, or waiting for a retry), so a citizen never reads "needs a supplement" before
# "received", even when "received" failed once and is tried again later.
_SAME_LINE = (
    _EARLIER.c.dossier_id == t.notices.c.dossier_id,
    _EARLIER.c.recipient == t.notices.c.recipient,
    _EARLIER.c.seq < t.notices.c.seq,
)
# Two EXISTS rather than one with an OR of the two states: each then matches an index of its
# own (ix_notifier_notices_in_line has exactly the states of the first), so a claim costs a
# lookup a candidate whatever the planner's statistics say. With the OR, on a table freshly
# filled (statistics not yet taken) PostgreSQL scanned the whole due index for every
# candidate: 0.9 s to claim 100 of 8,000 notices.
_WAITS_FOR_AN_EARLIER = sa.or_(
    sa.exists()
    .where(*_SAME_LINE, _among(_EARLIER.c.status, ("held", "pending", "sending")))
    .correlate(t.notices),
    # A ZNS waiting for its report may yet be followed by its SMS.
    sa.exists()
    .where(*_SAME_LINE, _EARLIER.c.status == "accepted", _EARLIER.c.channel == ZALO)
    .correlate(t.notices),
)


async def claim_due_notices(
    conn: AsyncConnection, now: datetime, limit: int, lease: timedelta
) -> list[Outgoing]:
    rows = await _claim_due(
        conn,
        t.notices,
        "id",
        ("held", "pending"),
        now,
        limit,
        lease,
        in_turn=sa.not_(_WAITS_FOR_AN_EARLIER),
        order=t.notices.c.seq,
    )
    return [
        Outgoing(
            r.id,
            r.recipient,
            r.text,
            r.unicode,
            r.attempts,
            r.first_attempt_at,
            r.gateway_index,
            r.dossier_id,
            r.channel,
            r.zns,
        )
        for r in rows
    ]


@dataclass(frozen=True)
class EarlyReceipts:
    """How many receipts for messages not recorded yet are kept, and how long. They wait for
    the gateway's answer to be committed (seconds; after a crash, until the resend): a bound
    keeps a flood of receipts for messages that will never come from filling the table."""

    max_count: int = 10_000
    max_age: timedelta = timedelta(hours=24)


@dataclass(frozen=True)
class Attempt:
    """What one attempt at a notice came to, to be recorded: `accepted` (with the gateway's
    message id), `pending` again (a retry at `next_attempt_at`, on the gateway of
    `gateway_index`), or `failed` for good."""

    notice: Outgoing
    status: str  # accepted | pending | failed
    gateway: str
    message_id: str | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    gateway_index: int | None = None  # None: the same as before
    # The Zalo leg (notifier.domain.channels): the channel after this attempt (None: the
    # same), the ZNS's id when accepted, the history row the move says, and whether the
    # SMS starts its own attempts afresh.
    channel: Channel | None = None
    zns_message_id: str | None = None
    note: tuple[str, str | None] | None = None
    restart: bool = False

    @classmethod
    def of_move(cls, notice: Outgoing, move: Move, gateway: str, zns_id: str | None) -> Attempt:
        return cls(
            notice,
            move.status,
            gateway,
            error=move.detail if move.status != "accepted" else None,
            next_attempt_at=move.next_attempt_at,
            channel=move.channel,
            zns_message_id=zns_id if move.status == "accepted" else None,
            note=(move.history, move.detail),
            restart=move.restart,
        )

    @property
    def history(self) -> tuple[str, str | None]:
        """The history row's status and detail."""
        if self.note is not None:
            return self.note
        if self.status == "accepted":
            return "accepted", self.gateway
        return ("retry" if self.status == "pending" else "failed"), f"{self.gateway}: {self.error}"


# One UPDATE for every outcome, executemany: a column an outcome leaves alone is given as
# NULL and kept by COALESCE (the message id but when accepted, the gateway index but on a
# retry), so a batch's outcomes, whatever their mix, are one statement.
_AFTER_ATTEMPT = (
    t.notices.update()
    .where(t.notices.c.id == sa.bindparam("a_id"))
    .values(
        status=sa.bindparam("a_status"),
        gateway=sa.bindparam("a_gateway"),
        message_id=sa.func.coalesce(
            sa.bindparam("a_message_id", type_=sa.String), t.notices.c.message_id
        ),
        next_attempt_at=sa.bindparam("a_next_attempt_at", type_=t.notices.c.next_attempt_at.type),
        lease_until=None,
        error=sa.bindparam("a_error", type_=sa.String),
        gateway_index=sa.func.coalesce(
            sa.bindparam("a_gateway_index", type_=sa.Integer), t.notices.c.gateway_index
        ),
        attempts=sa.bindparam("a_attempts"),
        first_attempt_at=sa.bindparam(
            "a_first_attempt_at", type_=t.notices.c.first_attempt_at.type
        ),
        channel=sa.func.coalesce(sa.bindparam("a_channel", type_=sa.String), t.notices.c.channel),
        zns_message_id=sa.func.coalesce(
            sa.bindparam("a_zns_message_id", type_=sa.String), t.notices.c.zns_message_id
        ),
        updated_at=sa.bindparam("a_now"),
    )
)


async def record_attempts(
    conn: AsyncConnection,
    attempts: Sequence[Attempt],
    now: datetime,
    early_max_age: timedelta = EarlyReceipts.max_age,
) -> None:
    """The outcomes of a batch of attempts, in the caller's transaction: each notice's new
    state (one executemany), its history row (one insert), and for the accepted ones the
    delivery receipts that came before the answer was recorded (one delete), applied now
    unless older than `early_max_age`."""
    if not attempts:
        return
    await conn.execute(
        _AFTER_ATTEMPT,
        [
            {
                "a_id": a.notice.id,
                "a_status": a.status,
                "a_gateway": a.gateway,
                "a_message_id": a.message_id if a.status == "accepted" else None,
                "a_next_attempt_at": a.next_attempt_at,
                "a_error": None if a.status == "accepted" or a.error is None else a.error[:200],
                "a_gateway_index": a.gateway_index,
                "a_attempts": 0 if a.restart else a.notice.attempts + 1,
                "a_first_attempt_at": None if a.restart else a.notice.first_attempt_at or now,
                "a_channel": a.channel,
                "a_zns_message_id": a.zns_message_id,
                "a_now": now,
            }
            for a in attempts
        ],
    )
    history = [(a.notice.id, *a.history) for a in attempts]
    await conn.execute(
        t.notice_history.insert(),
        [_history_row(notice, status, now, detail) for notice, status, detail in history],
    )
    accepted = [
        a.message_id or a.zns_message_id
        for a in attempts
        if a.status == "accepted" and (a.message_id or a.zns_message_id)
    ]
    if not accepted:
        return
    c = t.early_receipts.c
    early = await conn.execute(
        sa.delete(t.early_receipts)
        .where(c.message_id.in_(accepted))
        .returning(c.message_id, c.status, c.error, c.received_at)
    )
    for receipt in early.all():
        if receipt.received_at >= now - early_max_age:
            await apply_receipt(conn, receipt.message_id, receipt.status, receipt.error, now)


async def apply_receipt(
    conn: AsyncConnection,
    message_id: str,
    status: str,
    error: str | None,
    now: datetime,
    early: EarlyReceipts | None = None,
    notice_id: str | None = None,
    *,
    zalo: bool = False,
    also_as: str | None = None,
) -> str | None:
    """Delivery receipt (báo cáo gửi tin) of a notice's SMS or ZNS: what it does is
    channels.after_report's to say (a ZNS failed sends the SMS; a ZNS report after the SMS
    was chosen is only recorded). Returns the notice id, or None when no notice has the
    message id yet (kept for when it does, within ``early``'s bounds, under ``also_as``
    too: the id a resend the gateway recognised is recorded with). ``notice_id``, when the
    gateway echoes our request id (``zalo``: the ZNS's), finds a notice it accepted under
    another message id; one not yet accepted is not taken by it, or the answer's record
    would overwrite the receipt."""
    c = t.notices.c
    on_zalo = (c.zns_message_id == message_id).label("on_zalo")
    columns = (c.id, c.status, c.channel, on_zalo)
    row = (
        await conn.execute(
            sa.select(*columns).where(
                sa.or_(c.message_id == message_id, c.zns_message_id == message_id)
            )
        )
    ).first()
    if row is None and notice_id:
        accepted = (
            c.zns_message_id.is_not(None)
            if zalo
            else sa.and_(c.channel == SMS, c.status.in_(("accepted", "delivered", "failed")))
        )
        on = sa.literal(zalo).label("on_zalo")
        query = sa.select(c.id, c.status, c.channel, on).where(c.id == notice_id, accepted)
        row = (await conn.execute(query)).first()
    move = None
    if row is not None:
        about = ZALO if row.on_zalo else SMS
        delivered = status == "delivered"
        move = channels.after_report(row.status, row.channel, about, delivered, error, now)
    if row is None or move is None or move.effect == Effect.KEEP:
        for key in dict.fromkeys(k for k in (message_id, also_as) if k):
            await _keep_early_receipt(conn, key, status, error, now, early or EarlyReceipts())
        return None
    if move.effect == Effect.APPLY:
        moved = await conn.execute(
            t.notices.update()
            .where(c.id == row.id, c.status == row.status, c.channel == row.channel)
            .values(**_moved(move, now))
        )
        if not moved.rowcount:  # moved meanwhile (the report bound ran out): told again
            return await apply_receipt(
                conn, message_id, status, error, now, early, notice_id, zalo=zalo, also_as=also_as
            )
    if move.effect != Effect.IGNORE:
        await add_history(conn, row.id, move.history, now, move.detail)
    return str(row.id)


def _moved(move: Move, now: datetime) -> dict[str, Any]:
    """The columns a move sets (on a notice that is not being sent)."""
    values: dict[str, Any] = {
        "status": move.status,
        "channel": move.channel,
        "error": move.detail[:200] if move.detail and move.status != "delivered" else None,
        "next_attempt_at": move.next_attempt_at,
        "updated_at": now,
    }
    if move.restart:
        values.update(attempts=0, first_attempt_at=None, lease_until=None)
    return values


async def fall_back_unreported(conn: AsyncConnection, now: datetime, wait: timedelta) -> int:
    """The ZNS accepted whose report did not come within ``wait`` are taken as failed: their
    SMS is due now (channels.report_overdue). One UPDATE and one INSERT for all of them, in
    the transaction that then claims them; a report that comes after finds them on the SMS."""
    c = t.notices.c
    move = channels.report_overdue(now, wait)
    moved = await conn.execute(
        t.notices.update()
        .where(c.status == "accepted", c.channel == ZALO, c.next_attempt_at <= now)
        .values(**_moved(move, now))
        .returning(c.id)
    )
    ids = list(moved.scalars())
    if ids:
        await conn.execute(
            t.notice_history.insert(),
            [_history_row(notice, move.history, now, move.detail) for notice in ids],
        )
    return len(ids)


async def _keep_early_receipt(
    conn: AsyncConnection,
    message_id: str,
    status: str,
    error: str | None,
    now: datetime,
    bounds: EarlyReceipts,
) -> None:
    c = t.early_receipts.c
    await conn.execute(t.early_receipts.delete().where(c.received_at < now - bounds.max_age))
    insert = dialect_insert(conn, t.early_receipts).values(
        message_id=message_id, status=status, error=error, received_at=now
    )
    if not (await conn.execute(insert.on_conflict_do_nothing())).rowcount:
        return  # told twice: the first is kept
    kept = (await conn.execute(sa.select(sa.func.count()).select_from(t.early_receipts))).scalar()
    over = int(kept or 0) - bounds.max_count
    if over > 0:
        # The oldest go: a genuine early receipt is matched within seconds of its arrival.
        oldest = (
            sa.select(c.message_id)
            .where(c.message_id != message_id)
            .order_by(c.received_at, c.message_id)
            .limit(over)
        )
        await conn.execute(t.early_receipts.delete().where(c.message_id.in_(oldest)))


# -- housekeeping ---------------------------------------------------------------------------

FINAL_NOTICE_STATUSES = ("accepted", "delivered", "failed", "skipped")


async def forget_early_receipts_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """Receipts for messages never recorded, older than `cutoff`: they will not be matched."""
    c = t.early_receipts.c
    result = await conn.execute(t.early_receipts.delete().where(c.received_at < cutoff))
    return int(result.rowcount or 0)


async def forget_notices_before(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Up to `limit` notices done with (sent, delivered, failed or skipped) and unchanged
    since `cutoff`, with their history; returns how many. A notice still to be sent, or
    waiting for its delivery receipt, is kept whatever its age."""
    c = t.notices.c
    ids = list(
        (
            await conn.execute(
                sa.select(c.id)
                .where(c.status.in_(FINAL_NOTICE_STATUSES), c.updated_at < cutoff)
                .limit(limit)
            )
        ).scalars()
    )
    if ids:
        await conn.execute(t.notice_history.delete().where(t.notice_history.c.notice_id.in_(ids)))
        await conn.execute(t.notices.delete().where(c.id.in_(ids)))
    return len(ids)


async def forget_alerts_before(conn: AsyncConnection, cutoff: datetime) -> int:
    """Flags raised before `cutoff` still waiting for a dossier the notifier never heard of
    (its receipt lost): nothing will ever make them true to tell."""
    c = t.alerts.c
    result = await conn.execute(t.alerts.delete().where(c.raised_at < cutoff))
    return int(result.rowcount or 0)


# -- postal orders --------------------------------------------------------------------------


async def add_postal_order(conn: AsyncConnection, order: PostalOrderDraft, now: datetime) -> bool:
    """Insert the order unless the dossier has one; True when it is new (with its history)."""
    receiver = {
        "name": order.receiver.name,
        "phone": order.receiver.phone,
        "address": dict(order.address),
    }
    insert = dialect_insert(conn, t.postal_orders).values(
        dossier_id=order.dossier_id,
        reference=order.reference,
        receiver=receiver,
        content=order.content,
        status="pending",
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    result = await conn.execute(insert.on_conflict_do_nothing())
    if not result.rowcount:
        return False
    await add_postal_history(conn, order.dossier_id, "pending", now)
    return True


async def add_postal_history(
    conn: AsyncConnection, dossier_id: str, status: str, at: datetime, detail: str | None = None
) -> None:
    await conn.execute(
        t.postal_history.insert().values(
            dossier_id=dossier_id, status=status, at=at, detail=detail[:200] if detail else None
        )
    )


@dataclass(frozen=True)
class PendingOrder:
    dossier_id: str
    reference: str
    receiver: Mapping[str, Any]
    content: str
    attempts: int
    first_attempt_at: datetime | None
    # The agency that received the dossier: its one-stop office sends the result back, so
    # the parcel leaves from its pickup address. None if the dossier's card is gone.
    agency_code: str | None = None

    @classmethod
    def of(cls, r: Any, agency_code: str | None = None) -> PendingOrder:
        return cls(
            r.dossier_id,
            r.reference,
            r.receiver,
            r.content,
            r.attempts,
            r.first_attempt_at,
            agency_code,
        )


async def claim_due_orders(
    conn: AsyncConnection, now: datetime, limit: int, lease: timedelta
) -> list[PendingOrder]:
    rows = await _claim_due(conn, t.postal_orders, "dossier_id", ("pending",), now, limit, lease)
    if not rows:
        return []
    # A query of its own rather than a join in the claim: PostgreSQL's FOR UPDATE would
    # lock the cards too, which the consumer writes.
    d = t.dossiers.c
    agencies = dict(
        (
            await conn.execute(
                sa.select(d.dossier_id, d.agency_code).where(
                    d.dossier_id.in_([r.dossier_id for r in rows])
                )
            )
        ).all()
    )
    return [PendingOrder.of(r, agencies.get(r.dossier_id)) for r in rows]


async def update_order(
    conn: AsyncConnection, order: PendingOrder, now: datetime, **values: Any
) -> bool:
    """The outcome of an attempt, if the order is still waiting for one; False when it was
    placed meanwhile (the operator's webhook told its number before the answer came)."""
    c = t.postal_orders.c
    result = await conn.execute(
        t.postal_orders.update()
        .where(c.dossier_id == order.dossier_id, c.status.in_(("pending", "sending")))
        .values(
            attempts=order.attempts + 1,
            first_attempt_at=order.first_attempt_at or now,
            lease_until=None,
            updated_at=now,
            **values,
        )
    )
    return bool(result.rowcount)


async def advance_carrier_status(
    conn: AsyncConnection, dossier_id: str, known: str | None, status: str, now: datetime
) -> bool:
    """Set the operator's status if it is still ``known``; False when another callback moved
    it in the meantime (the caller decided on ``known``)."""
    c = t.postal_orders.c
    still = c.carrier_status.is_(None) if known is None else c.carrier_status == known
    result = await conn.execute(
        t.postal_orders.update()
        .where(c.dossier_id == dossier_id, still)
        .values(carrier_status=status, updated_at=now)
    )
    return bool(result.rowcount)


async def order_by_tracking(conn: AsyncConnection, tracking_code: str) -> Any:
    return (
        await conn.execute(
            sa.select(t.postal_orders).where(t.postal_orders.c.tracking_code == tracking_code)
        )
    ).first()


async def unplaced_order(conn: AsyncConnection, reference: str) -> PendingOrder | None:
    """The order of this reference (dossier code) if it waits for the operator's answer."""
    c = t.postal_orders.c
    query = sa.select(t.postal_orders).where(
        c.reference == reference, c.status.in_(("pending", "sending"))
    )
    row = (await conn.execute(query)).first()
    return PendingOrder.of(row) if row is not None else None


# -- metrics --------------------------------------------------------------------------------


async def count_by_status(conn: AsyncConnection, table: sa.Table) -> dict[str, int]:
    """Rows of the notices or the postal orders table by status."""
    query = sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
    return {status: int(count) for status, count in await conn.execute(query)}


# -- calendar -------------------------------------------------------------------------------


async def load_overrides(conn: AsyncConnection) -> list[CalendarOverride]:
    raw = (
        await conn.execute(sa.select(t.calendar.c.overrides).where(t.calendar.c.id == 1))
    ).scalar_one_or_none()
    return [
        CalendarOverride(date.fromisoformat(o["day"]), DayKind(o["kind"]), o.get("note", ""))
        for o in raw or []
    ]


async def save_overrides(
    conn: AsyncConnection, overrides: Sequence[CalendarOverride], now: datetime
) -> None:
    values = {
        "overrides": [
            {"day": o.day.isoformat(), "kind": o.kind.value, "note": o.note} for o in overrides
        ],
        "updated_at": now,
    }
    insert = dialect_insert(conn, t.calendar).values(id=1, **values)
    await conn.execute(insert.on_conflict_do_update(index_elements=["id"], set_=values))


# -- personal data --------------------------------------------------------------------------

ERASED_DETAIL = "personal_data_erased"
WAITING = ("held", "pending", "sending")


async def erase_personal_data(
    conn: AsyncConnection, dossier_ids: Iterable[str], now: datetime
) -> int:
    """The copies of the applicants' data besides their cards (which `save_cards` writes
    erased, see DossierCard.without_personal_data): each citizen notice about these dossiers
    keeps its recipient masked (mask_phone: an audit still tells notices apart) and its text,
    which names the dossier and the procedure, not the applicant; a postal order forgets its
    receiver (name, phone, address). Whatever still waits to be sent cannot be any more: a
    notice is skipped, an order failed. Returns how many rows changed; told twice, none.

    Supervisors' notices are left alone: their recipients are not the applicant."""
    ids = sorted(set(dossier_ids))
    if not ids:
        return 0
    n = t.notices.c
    rows = list(
        await conn.execute(
            sa.select(n.id, n.recipient, n.status, n.channel).where(
                n.dossier_id.in_(ids), n.audience == "citizen"
            )
        )
    )
    notices = [r for r in rows if r.recipient != mask_phone(r.recipient)]
    if notices:
        await conn.execute(
            t.notices.update()
            .where(n.id == sa.bindparam("b_id"))
            .values(recipient=sa.bindparam("recipient"), updated_at=now),
            [{"b_id": r.id, "recipient": mask_phone(r.recipient)} for r in notices],
        )
    # A ZNS waiting for its report (channels) may still be followed by an SMS: it waits too.
    waiting = [
        r.id for r in rows if r.status in WAITING or (r.status == "accepted" and r.channel == ZALO)
    ]
    if waiting:
        await conn.execute(
            t.notices.update()
            .where(n.id.in_(waiting))
            .values(status="skipped", error=ERASED_DETAIL, next_attempt_at=None, updated_at=now)
        )
        await conn.execute(
            t.notice_history.insert(),
            [_history_row(notice, "skipped", now, ERASED_DETAIL) for notice in waiting],
        )
    o = t.postal_orders.c
    orders = [
        r
        for r in await conn.execute(
            sa.select(o.dossier_id, o.receiver, o.status).where(o.dossier_id.in_(ids))
        )
        if r.receiver
    ]
    for order in orders:  # a result sent by post: few
        unsent = order.status in ("pending", "sending")
        values: dict[str, Any] = {"receiver": {}, "updated_at": now}
        if unsent:
            values.update(status="failed", error=ERASED_DETAIL, next_attempt_at=None)
        await conn.execute(
            t.postal_orders.update().where(o.dossier_id == order.dossier_id).values(values)
        )
        if unsent:
            await add_postal_history(conn, order.dossier_id, "failed", now, ERASED_DETAIL)
    return len(notices) + len(set(waiting) - {r.id for r in notices}) + len(orders)
