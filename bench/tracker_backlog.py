"""The backlog the tracker scan benchmark loads: open dossiers whose next deadline check is
chosen, so that exactly the dossiers asked for are due at ``NOW`` and every other one later.

Every row copies a template built through the real domain: the intake's ``Dossier`` records
the receipt (and the start, a transfer) for one of seven procedures of six agencies, the
tracker's ``apply`` turns those events into a ``TrackedDossier``, ``scan`` plays a scanner
that kept up until an hour before ``NOW``, ``to_state`` gives the JSON and the repository's
``columns_of`` the other columns. Rows differ from their template by id and code only
(``Rows``), so millions can be copied quickly.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from datetime import time as wall
from typing import Any

from schemas.events import EVENT_TYPE_OF, Applicant
from services.core.calendars import CalendarBook
from services.core.domain.calendar import VN_TZ, WorkingCalendar
from services.core.domain.deadlines import TimeLimit, TimeUnit
from services.intake.domain.model import Dossier, Procedure
from services.tracker.adapters import repository as repo
from services.tracker.domain import (
    DEADLINE_DUE_SOON,
    DEADLINE_OVERDUE,
    DossierRef,
    TrackedDossier,
    apply,
    due_soon_instant,
    from_state,
    overdue_instant,
    scan,
)

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=VN_TZ)  # Friday 20 November 2026, 10:00 in Vietnam
THRESHOLD_MINUTES = 480  # due soon: 8 working hours left (the settings' default)
BACKLOG = timedelta(hours=1)  # the due dossiers crossed their threshold in the last hour
TABLE = "tracker_dossiers"
SEED = 20261121

# The columns of tracker_dossiers, in the order the repository writes them.
COLUMNS = (
    "dossier_id",
    "code",
    "agency_code",
    "handling_agency",
    "status",
    "received_at",
    "due_at",
    "version",
    "next_check_at",
    "finished_at",
    "outcome",
    "state",
    "updated_at",
)
ID_MARK = "@@dossier_id@@"
CODE_MARK = "@@code@@"

# -- the catalogue the dossiers come from -------------------------------------------------

SATURDAY_MORNINGS: dict[str, Any] = {
    "week": {
        **{str(day): [["07:30", "11:30"], ["13:30", "17:00"]] for day in range(5)},
        "5": [["07:30", "11:30"]],
    },
    "makeup_blocks": [],
}
# Office schedules per agency; {} is "none set": Mon–Fri 08–12, 13–17.
SCHEDULES: dict[str, dict[str, Any]] = {
    "UBND-Q1": SATURDAY_MORNINGS,
    "UBND-P.BENNGHE": SATURDAY_MORNINGS,
    "VPDK-Q1": {},
    "STP": {},
    "SKHDT": {},
    "SXD": {},
}


def _procedure(
    code: str, name: str, agency: str, value: int, unit: TimeUnit, cutoff: wall | None
) -> Procedure:
    return Procedure(code, name, agency, TimeLimit(value, unit), cutoff, postal_return=True)


DAYS, HOURS, CALENDAR_DAYS = TimeUnit.WORKING_DAYS, TimeUnit.WORKING_HOURS, TimeUnit.CALENDAR_DAYS
PROCEDURES = (
    _procedure("B-XD-01", "Cấp giấy phép xây dựng nhà ở riêng lẻ", "UBND-Q1", 15, DAYS, wall(15)),
    _procedure("B-DD-02", "Đăng ký biến động quyền sử dụng đất", "VPDK-Q1", 10, DAYS, wall(15)),
    _procedure("B-TP-03", "Cấp Phiếu lý lịch tư pháp", "STP", 10, DAYS, None),
    _procedure("B-DN-04", "Đăng ký thành lập doanh nghiệp", "SKHDT", 3, DAYS, None),
    _procedure("B-CT-05", "Chứng thực hợp đồng, giao dịch", "UBND-P.BENNGHE", 16, HOURS, wall(15)),
    _procedure("B-HT-06", "Xác nhận tình trạng hôn nhân", "UBND-P.BENNGHE", 3, DAYS, wall(15)),
    _procedure("B-KN-07", "Giải quyết khiếu nại lần đầu", "SXD", 30, CALENDAR_DAYS, None),
)
# Inter-agency steps (liên thông): the agency consulted and its allotted working hours.
TRANSFERS: dict[str, tuple[str, int]] = {
    "UBND-Q1": ("SXD", 40),
    "VPDK-Q1": ("CCT-Q1", 24),
    "STP": ("CA-TP", 40),
}
APPLICANT = Applicant(full_name="Nguyễn Văn An", phone="+84912345678", id_number="001203004567")

# -- templates: dossier states built through the real domain ------------------------------


@dataclass(frozen=True)
class Template:
    """One tracked dossier, copied into many rows that differ by id and code only.

    ``kind``: "due_soon" or "overdue" when a scan at ``NOW`` raises that flag (and nothing
    else), "future" when its next check is after ``NOW``.
    """

    kind: str
    tracked: TrackedDossier
    code_prefix: str
    head: tuple[Any, ...]  # the columns between code and state
    state_json: str
    updated_at: datetime

    @classmethod
    def of(cls, kind: str, tracked: TrackedDossier) -> Template:
        marked = replace(tracked, dossier_id=ID_MARK, code=CODE_MARK)
        columns = repo.columns_of(marked, tracked.last_event_at)  # what the repository writes
        if ("dossier_id", *columns) != COLUMNS:
            raise RuntimeError(f"tracker_dossiers columns changed: {list(columns)}")
        state_json = json.dumps(columns["state"])
        if state_json.count(ID_MARK) != 1 or state_json.count(CODE_MARK) != 1:
            raise RuntimeError("the state names the dossier id or code more than once")
        day = tracked.received_at.astimezone(VN_TZ)
        return cls(
            kind=kind,
            tracked=tracked,
            code_prefix=f"{tracked.agency_code}-{day:%Y%m%d}",
            head=tuple(columns[name] for name in COLUMNS[2:-2]),
            state_json=state_json,
            updated_at=columns["updated_at"],
        )

    def record(self, dossier_id: str, code: str) -> tuple[Any, ...]:
        state = self.state_json.replace(ID_MARK, dossier_id, 1).replace(CODE_MARK, code, 1)
        return (dossier_id, code, *self.head, state, self.updated_at)

    def check_round_trip(self) -> None:
        row = self.record("00000000-0000-4000-8000-000000000000", "X-20261120-0001")
        expected = replace(self.tracked, dossier_id=row[0], code=row[1])
        if from_state(json.loads(row[COLUMNS.index("state")])) != expected:
            raise RuntimeError(f"template state does not round-trip: {self.code_prefix}")


@dataclass(frozen=True)
class TemplateCounts:
    """How many receipts to sample per procedure and variant."""

    due_per_window: int = 12  # per threshold (due soon, overdue) crossed in the backlog
    future_per_variant: int = 150


@dataclass(frozen=True)
class Templates:
    due: list[Template]
    future: list[Template]


def _first(predicate: Callable[[int], bool], lo: int, hi: int) -> int:
    """The smallest n in [lo, hi) with predicate(n), or hi; predicate must be monotone."""
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


class TemplateBuilder:
    """Samples receipts per procedure, plays their events and scans, keeps the usable ones."""

    SEARCH = timedelta(days=120)  # how far back receipts are looked for

    def __init__(self, calendars: CalendarBook, now: datetime, rng: random.Random) -> None:
        self.calendars = calendars
        self.now = now
        self.rng = rng
        self.scanned_until = now - BACKLOG

    def calendar(self, procedure: Procedure) -> WorkingCalendar:
        return self.calendars.for_schedule_dict(SCHEDULES[procedure.agency_code] or None)

    def _receive(self, procedure: Procedure, at: datetime, channel: str) -> Dossier:
        return Dossier.receive(
            id=ID_MARK,
            code=CODE_MARK,
            procedure=procedure,
            applicant=APPLICANT,
            channel=channel,  # type: ignore[arg-type]
            return_method="counter",
            return_address=None,
            received_at=at,
            calendar=self.calendar(procedure),
            office_schedule=SCHEDULES[procedure.agency_code],
        )

    def _channel(self, at: datetime) -> str:
        local = at.astimezone(VN_TZ)
        at_office = local.weekday() < 5 and wall(7, 30) <= local.time() < wall(17)
        return (
            self.rng.choice(("counter", "counter", "online", "postal")) if at_office else "online"
        )

    def track(self, procedure: Procedure, variant: str, received_at: datetime) -> TrackedDossier:
        """The tracker's state of a dossier received at ``received_at``, as the scanner left
        it an hour before ``now`` (every threshold crossed by then flagged at its instant)."""
        calendar = self.calendar(procedure)
        dossier = self._receive(procedure, received_at, self._channel(received_at))
        at = received_at
        if variant in ("started", "transferred"):
            at += timedelta(minutes=self.rng.randint(5, 120))
            if at < self.now:
                dossier.start(at, unit="Bộ phận chuyên môn")
        if variant == "transferred" and len(dossier.events) == 2:
            to_agency, hours = TRANSFERS[procedure.agency_code]
            at += timedelta(minutes=self.rng.randint(30, 600))
            if at < self.now:
                dossier.transfer(at, to_agency, hours, calendar)
        ref = DossierRef(ID_MARK, CODE_MARK, procedure.agency_code)
        tracked: TrackedDossier | None = None
        for dossier_event in dossier.events:
            if tracked is not None:
                tracked = self._scan_until(tracked, min(dossier_event.at, self.scanned_until))
            decision = apply(
                tracked,
                EVENT_TYPE_OF[type(dossier_event)],
                dossier_event,
                calendar,
                THRESHOLD_MINUTES,
                ref=ref,
                event_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            )
            if not decision.applied or decision.tracked is None:
                raise RuntimeError(f"the tracker ignored the intake's event: {decision.ignored}")
            tracked = decision.tracked
        assert tracked is not None
        return self._scan_until(tracked, self.scanned_until)

    def _scan_until(self, tracked: TrackedDossier, until: datetime) -> TrackedDossier:
        calendar = self.calendars.for_schedule_dict(tracked.schedule or None)
        for _ in range(20):
            check = tracked.next_check_at
            if check is None or check > until:
                return tracked
            tracked = scan(tracked, check, calendar, THRESHOLD_MINUTES).tracked
        raise RuntimeError(f"next_check_at stuck at {tracked.next_check_at}")

    def classify(self, tracked: TrackedDossier) -> str | None:
        """The template's kind: "due_soon" / "overdue" when a scan at ``now`` raises exactly
        that flag and moves the next check past ``now``; "future" when nothing is due before
        ``now``; None otherwise."""
        check = tracked.next_check_at
        if check is None:
            return None  # every flag raised already: not in the partial index
        calendar = self.calendars.for_schedule_dict(tracked.schedule or None)
        result = scan(tracked, self.now, calendar, THRESHOLD_MINUTES)
        if check > self.now:
            return "future" if not result.events and not result.changed else None
        after = result.tracked.next_check_at
        if len(result.events) != 1 or (after is not None and after <= self.now):
            return None
        kind = result.events[0].type
        return (
            kind.removeprefix("deadline.")
            if kind in (DEADLINE_DUE_SOON, DEADLINE_OVERDUE)
            else None
        )

    def receipts_crossing(
        self,
        procedure: Procedure,
        crossing: Callable[[TrackedDossier, WorkingCalendar], datetime],
        after: datetime,
        until: datetime,
    ) -> tuple[datetime, datetime] | None:
        """The receipt instants (to the minute) whose ``crossing`` falls in (after, until]."""
        start = self.now - self.SEARCH
        minutes = int(self.SEARCH.total_seconds() // 60)
        calendar = self.calendar(procedure)

        def crossed(minute: int) -> datetime:
            at = start + timedelta(minutes=minute)
            decision = apply(
                None,
                "dossier.received",
                self._receive(procedure, at, "online").events[0],
                calendar,
                THRESHOLD_MINUTES,
                ref=DossierRef(ID_MARK, CODE_MARK, procedure.agency_code),
            )
            assert decision.tracked is not None
            return crossing(decision.tracked, calendar)

        lo = _first(lambda m: crossed(m) > after, 0, minutes)
        hi = _first(lambda m: crossed(m) > until, lo, minutes)
        if lo >= hi:
            return None
        return start + timedelta(minutes=lo), start + timedelta(minutes=hi)

    def sample(self, lo: datetime, hi: datetime) -> datetime:
        seconds = self.rng.uniform(0, (hi - lo).total_seconds())
        return (lo + timedelta(seconds=seconds)).replace(microsecond=0)

    def build(self, counts: TemplateCounts) -> Templates:
        due: list[Template] = []
        future: list[Template] = []
        windows: dict[str, Callable[[TrackedDossier, WorkingCalendar], datetime]] = {
            "due_soon": lambda t, cal: due_soon_instant(t.clock, cal, THRESHOLD_MINUTES),
            "overdue": lambda t, _cal: overdue_instant(t.clock.due_at),
        }
        for procedure in PROCEDURES:
            for crossing in windows.values():
                found = self.receipts_crossing(procedure, crossing, self.scanned_until, self.now)
                if found is None:
                    continue
                for variant in ("received", "started"):
                    for _ in range(counts.due_per_window):
                        tracked = self.track(procedure, variant, self.sample(*found))
                        kind = self.classify(tracked)
                        if kind in ("due_soon", "overdue"):
                            due.append(Template.of(kind, tracked))
            # Receipts late enough for the dossier not to be overdue by now.
            latest = self.receipts_crossing(
                procedure, windows["overdue"], self.now, self.now + self.SEARCH
            )
            if latest is None:
                continue
            variants = ["received", "started"]
            if procedure.agency_code in TRANSFERS:
                variants.append("transferred")
            for variant in variants:
                kept = 0
                for _ in range(counts.future_per_variant * 3):
                    tracked = self.track(procedure, variant, self.sample(latest[0], self.now))
                    if self.classify(tracked) == "future":
                        future.append(Template.of("future", tracked))
                        kept += 1
                        if kept == counts.future_per_variant:
                            break
        if not due or not future:
            raise RuntimeError(f"no templates: {len(due)} due, {len(future)} future")
        for template in (*due, *future):
            template.check_round_trip()
        return Templates(due, future)


def build_templates(
    calendars: CalendarBook, counts: TemplateCounts = TemplateCounts(), seed: int = SEED
) -> Templates:
    return TemplateBuilder(calendars, NOW, random.Random(seed)).build(counts)


class Rows:
    """Rows copied from templates: a fresh id each (uuid4 from a seeded generator) and a code
    numbered per agency and day of receipt, as the intake numbers them."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._numbers: Counter[str] = Counter()

    def pairs(
        self, templates: Sequence[Template], count: int
    ) -> Iterator[tuple[Template, tuple[Any, ...]]]:
        rng, numbers = self._rng, self._numbers
        for _ in range(count):
            template = templates[rng.randrange(len(templates))]
            numbers[template.code_prefix] += 1
            dossier_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            code = f"{template.code_prefix}-{numbers[template.code_prefix]:04d}"
            yield template, template.record(dossier_id, code)

    def make(self, templates: Sequence[Template], count: int) -> Iterator[tuple[Any, ...]]:
        return (record for _, record in self.pairs(templates, count))
