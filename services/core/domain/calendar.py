"""Working-time calendar (lịch làm việc): office hours, days off and working-time arithmetic.

Pure functions over dates and aware datetimes; no clock reads. All results are in ``VN_TZ``.

Resolution is one minute: wherever working time is counted (``add_working_minutes``,
``working_minutes_between``) input instants are floored to the whole minute, so a dossier
received at 08:00:45 counts from 08:00. Office blocks are whole minutes as well.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

# A calendar with no working day for this long is certainly misconfigured.
SEARCH_HORIZON_DAYS = 3 * 366

_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def _minute_of_day(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True)
class Block:
    """One office block (buổi làm việc), e.g. 08:00–12:00; start inclusive, end exclusive."""

    start: time
    end: time

    def __post_init__(self) -> None:
        for t in (self.start, self.end):
            if not isinstance(t, time):
                raise ValueError(f"block bound must be a datetime.time, got {t!r}")
            if t.tzinfo is not None:
                raise ValueError(f"block bound must be a local wall time without tzinfo: {t}")
            if t.second or t.microsecond:
                raise ValueError(f"block bound must be a whole minute: {t}")
        if self.start >= self.end:
            raise ValueError(f"block start {self.start:%H:%M} must be before end {self.end:%H:%M}")

    @property
    def minutes(self) -> int:
        return _minute_of_day(self.end) - _minute_of_day(self.start)

    def to_list(self) -> list[str]:
        return [f"{self.start:%H:%M}", f"{self.end:%H:%M}"]

    @classmethod
    def parse(cls, raw: Any) -> Block:
        """Build a block from ``["08:00", "12:00"]``."""
        if not isinstance(raw, list | tuple) or len(raw) != 2:
            raise ValueError(f'a block must be a pair ["HH:MM", "HH:MM"], got {raw!r}')
        return cls(_parse_hhmm(raw[0]), _parse_hhmm(raw[1]))


def _parse_hhmm(raw: Any) -> time:
    if not isinstance(raw, str):
        raise ValueError(f'time must be a "HH:MM" string, got {raw!r}')
    match = _HHMM.match(raw.strip())
    if match is None:
        raise ValueError(f'time must be "HH:MM" (00:00–23:59), got {raw!r}')
    return time(int(match.group(1)), int(match.group(2)))


def _check_blocks(blocks: Iterable[Block], where: str) -> tuple[Block, ...]:
    result = tuple(blocks)
    for b in result:
        if not isinstance(b, Block):
            raise ValueError(f"{where}: expected Block, got {b!r}")
    for prev, nxt in zip(result, result[1:], strict=False):
        if nxt.start < prev.end:
            raise ValueError(
                f"{where}: blocks must be in order and must not overlap "
                f"({'-'.join(prev.to_list())} then {'-'.join(nxt.to_list())})"
            )
    return result


class _FrozenWeek(Mapping[int, tuple[Block, ...]]):
    """Immutable, hashable weekday → blocks map, so schedules can key caches."""

    __slots__ = ("_items",)

    def __init__(self, week: Mapping[int, Iterable[Block]]) -> None:
        items: dict[int, tuple[Block, ...]] = {}
        for key, blocks in week.items():
            if isinstance(key, bool) or not isinstance(key, int) or not 0 <= key <= 6:
                raise ValueError(f"weekday must be 0 (Monday) … 6 (Sunday), got {key!r}")
            checked = _check_blocks(blocks, f"weekday {key}")
            if checked:  # a day without blocks is the same as an absent day
                items[key] = checked
        self._items = tuple(sorted(items.items()))

    def __getitem__(self, key: int) -> tuple[Block, ...]:
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __iter__(self) -> Iterator[int]:
        return (k for k, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _FrozenWeek):
            return self._items == other._items
        return super().__eq__(other)

    def __repr__(self) -> str:
        return f"{dict(self._items)!r}"


_DEFAULT_DAY = (Block(time(8), time(12)), Block(time(13), time(17)))


@dataclass(frozen=True)
class OfficeSchedule:
    """Per-agency office hours (giờ làm việc).

    ``week`` maps weekday (0 = Monday … 6 = Sunday) to its blocks; absent days are not worked.
    ``makeup_blocks`` are the hours of an extra working day (ngày làm bù, or a workday declared
    by an administrator); left empty, they default to Monday's blocks (or 08–12, 13–17).
    """

    week: Mapping[int, tuple[Block, ...]]
    makeup_blocks: tuple[Block, ...] = field(default=())

    def __post_init__(self) -> None:
        week = _FrozenWeek(self.week)
        object.__setattr__(self, "week", week)
        makeup = _check_blocks(self.makeup_blocks, "makeup_blocks")
        if not makeup:
            makeup = week.get(0, _DEFAULT_DAY)
        object.__setattr__(self, "makeup_blocks", makeup)

    @classmethod
    def default(cls) -> OfficeSchedule:
        """Mon–Fri 08:00–12:00 and 13:00–17:00 (40 hours a week)."""
        return cls(week={day: _DEFAULT_DAY for day in range(5)})

    def blocks_for_weekday(self, weekday: int) -> tuple[Block, ...]:
        return self.week.get(weekday, ())

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": {str(k): [b.to_list() for b in v] for k, v in self.week.items()},
            "makeup_blocks": [b.to_list() for b in self.makeup_blocks],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> OfficeSchedule:
        """Parse ``{"week": {"0": [["08:00","12:00"], ...]}, "makeup_blocks": [...]}``."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"office schedule must be an object, got {type(raw).__name__}")
        unknown = set(raw) - {"week", "makeup_blocks"}
        if unknown:
            raise ValueError(f"office schedule: unknown keys {sorted(unknown)}")
        raw_week = raw.get("week")
        if not isinstance(raw_week, Mapping):
            raise ValueError('office schedule needs "week": {"0": [["08:00", "12:00"], ...]}')
        week = {_parse_weekday(k): _parse_blocks(v, f"weekday {k}") for k, v in raw_week.items()}
        makeup = _parse_blocks(raw.get("makeup_blocks", []), "makeup_blocks")
        return cls(week=week, makeup_blocks=makeup)


def _parse_weekday(raw: Any) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw.strip())
    raise ValueError(f'weekday key must be "0" (Monday) … "6" (Sunday), got {raw!r}')


def _parse_blocks(raw: Any, where: str) -> tuple[Block, ...]:
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{where}: blocks must be a list of pairs, got {raw!r}")
    try:
        return tuple(Block.parse(item) for item in raw)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


class DayKind(StrEnum):
    DAY_OFF = "day_off"
    WORKDAY = "workday"


@dataclass(frozen=True)
class CalendarOverride:
    """An administrator's correction: an announced extra day off (ngày nghỉ) or extra working day.

    A ``WORKDAY`` override makes the day an extra working day with the schedule's
    ``makeup_blocks``.
    """

    day: date
    kind: DayKind
    note: str = ""


def _require_aware(t: datetime, name: str = "datetime") -> datetime:
    if not isinstance(t, datetime):
        raise ValueError(f"{name} must be a datetime, got {t!r}")
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {t.isoformat()}")
    return t.astimezone(VN_TZ)


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _at(d: date, minute: int) -> datetime:
    return datetime(d.year, d.month, d.day, minute // 60, minute % 60, tzinfo=VN_TZ)


class WorkingCalendar:
    """Working days (ngày làm việc) and hours of one agency.

    Precedence for a date: override > public day off (not working) > make-up workday
    (working, with ``makeup_blocks``) > the weekly schedule.
    """

    def __init__(
        self,
        schedule: OfficeSchedule,
        public_days_off: Collection[date],
        makeup_workdays: Collection[date],
        overrides: Iterable[CalendarOverride] = (),
    ) -> None:
        self.schedule = schedule
        self.public_days_off = frozenset(public_days_off)
        self.makeup_workdays = frozenset(makeup_workdays)
        # A later override for the same day wins, like a later admin decision.
        self.overrides: Mapping[date, CalendarOverride] = {o.day: o for o in overrides}
        self._minute_cache: dict[date, tuple[tuple[int, int], ...]] = {}

    # -- per-day facts (cached: deadline computations revisit the same days constantly) --

    def _day_blocks(self, d: date) -> tuple[Block, ...]:
        override = self.overrides.get(d)
        if override is not None:
            return () if override.kind is DayKind.DAY_OFF else self.schedule.makeup_blocks
        if d in self.public_days_off:
            return ()
        if d in self.makeup_workdays:
            return self.schedule.makeup_blocks
        return self.schedule.blocks_for_weekday(d.weekday())

    def _minutes(self, d: date) -> tuple[tuple[int, int], ...]:
        cached = self._minute_cache.get(d)
        if cached is None:
            cached = tuple(
                (_minute_of_day(b.start), _minute_of_day(b.end)) for b in self._day_blocks(d)
            )
            self._minute_cache[d] = cached
        return cached

    def _day_total(self, d: date) -> int:
        return sum(end - start for start, end in self._minutes(d))

    def _next_working_day(self, d: date) -> date:
        """First working day strictly after ``d``."""
        for offset in range(1, SEARCH_HORIZON_DAYS + 1):
            candidate = d + timedelta(days=offset)
            if self._minutes(candidate):
                return candidate
        raise ValueError(f"no working day within {SEARCH_HORIZON_DAYS} days after {d}")

    # -- public API --

    def is_working_day(self, d: date) -> bool:
        """Whether ``d`` is a working day (ngày làm việc)."""
        return bool(self._minutes(d))

    def blocks_on(self, d: date) -> list[tuple[datetime, datetime]]:
        """Office blocks of ``d`` as aware ``(start, end)`` pairs in VN_TZ."""
        return [(_at(d, start), _at(d, end)) for start, end in self._minutes(d)]

    def next_working_instant(self, t: datetime) -> datetime:
        """``t`` if inside a block (start inclusive, end exclusive), else the next block start."""
        local = _require_aware(t, "t")
        since_midnight = local - _at(local.date(), 0)
        for start, end in self._minutes(local.date()):
            if since_midnight < timedelta(minutes=start):
                return _at(local.date(), start)
            if since_midnight < timedelta(minutes=end):
                return local
        return self.next_working_day_start(local)

    def next_working_day_start(self, t: datetime) -> datetime:
        """Start of the first block on the first working day strictly after ``t``'s local date."""
        local = _require_aware(t, "t")
        d = self._next_working_day(local.date())
        return _at(d, self._minutes(d)[0][0])

    def end_of_working_day(self, d: date) -> datetime:
        """End of the last block of working day ``d`` (close of business)."""
        blocks = self._minutes(d)
        if not blocks:
            raise ValueError(f"{d} is not a working day")
        return _at(d, blocks[-1][1])

    def add_working_minutes(self, start: datetime, minutes: int) -> datetime:
        """The instant at which ``minutes`` of working time counted from ``start`` are used up.

        Counting starts at ``next_working_instant(start)`` (floored to the minute). Ending
        exactly at a block end gives that block end, not the next block start.
        ``minutes == 0`` returns ``start`` unchanged (in VN_TZ).
        """
        local = _require_aware(start, "start")
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        if minutes == 0:
            return local
        begin = _floor_minute(self.next_working_instant(local))
        d, cursor, remaining = begin.date(), begin.hour * 60 + begin.minute, minutes
        while True:
            for block_start, block_end in self._minutes(d):
                if block_end <= cursor:
                    continue
                from_minute = max(block_start, cursor)
                available = block_end - from_minute
                if remaining <= available:
                    return _at(d, from_minute + remaining)
                remaining -= available
            # Skip whole days that cannot absorb what is left, without walking their blocks.
            d = self._next_working_day(d)
            while self._day_total(d) < remaining:
                remaining -= self._day_total(d)
                d = self._next_working_day(d)
            cursor = 0

    def subtract_working_minutes(self, end: datetime, minutes: int) -> datetime:
        """The earliest instant ``t`` with ``working_minutes_between(t, end) == minutes``.

        The inverse of ``working_minutes_between``: walk backwards from ``end`` (floored to the
        minute) through the office blocks. The result is always a whole minute in VN_TZ.

        Block boundaries: a walk that uses up ``minutes`` exactly at a block start does not stop
        there but goes on back through the non-working gap to the end of the previous block,
        since the gap adds no working time (60 minutes before Tue 09:00 is Mon 17:00, not
        Tue 08:00; 60 minutes before 14:00 is 12:00, not 13:00). Likewise ``minutes == 0``
        gives ``end`` itself inside a block or at a block end, and the end of the last block
        before ``end`` when ``end`` is at a block start or outside working time. So
        ``t >= subtract_working_minutes(end, m)`` ⇔ ``working_minutes_between(t, end) <= m``.
        """
        local = _floor_minute(_require_aware(end, "end"))
        if minutes < 0:
            raise ValueError(f"minutes must be >= 0, got {minutes}")
        d, cursor, remaining = local.date(), local.hour * 60 + local.minute, minutes
        while True:
            for block_start, block_end in reversed(self._minutes(d)):
                if block_start >= cursor:
                    continue
                to_minute = min(block_end, cursor)
                available = to_minute - block_start
                # Strictly less: using a block up to its start goes on to the previous block end.
                if remaining < available:
                    return _at(d, to_minute - remaining)
                remaining -= available
            # The previous working day; whole days that cannot hold what is left are skipped.
            days_off = 0
            while True:
                d -= timedelta(days=1)
                total = self._day_total(d)
                if total == 0:
                    days_off += 1
                    if days_off > SEARCH_HORIZON_DAYS:
                        raise ValueError(
                            f"no working day within {SEARCH_HORIZON_DAYS} days before {d}"
                        )
                    continue
                days_off = 0
                if total > remaining:
                    break
                remaining -= total
            cursor = 24 * 60

    def working_minutes_between(self, a: datetime, b: datetime) -> int:
        """Working minutes in ``[a, b)`` (0 if ``b <= a``); inverse of ``add_working_minutes``.

        Both ends are floored to the whole minute.
        """
        start = _floor_minute(_require_aware(a, "a"))
        end = _floor_minute(_require_aware(b, "b"))
        if end <= start:
            return 0
        start_minute = start.hour * 60 + start.minute
        end_minute = end.hour * 60 + end.minute
        if start.date() == end.date():
            return self._overlap(start.date(), start_minute, end_minute)
        total = self._overlap(start.date(), start_minute, 24 * 60)
        d = start.date() + timedelta(days=1)
        while d < end.date():
            total += self._day_total(d)
            d += timedelta(days=1)
        return total + self._overlap(end.date(), 0, end_minute)

    def _overlap(self, d: date, lo: int, hi: int) -> int:
        return sum(max(0, min(end, hi) - max(start, lo)) for start, end in self._minutes(d))
