"""What the dashboard shows, in Vietnamese: the on-time chart's bars, the citizens'
satisfaction per procedure, the flagged dossiers with how late (or how soon) in working time,
the failed notices. Pure: figures in, words and coordinates out; the rules are elsewhere (the
on-time rate: adapters.reports; the satisfaction figures: intake.satisfaction; working time:
core.domain.calendar; its wording: core.domain.vn_time)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.internal_api import SentNotice
from services.core.domain.calendar import WorkingCalendar
from services.core.domain.vn_time import lateness_text, minute_text
from services.intake.adapters.read_model import FlaggedDossier
from services.intake.adapters.reports import OnTimeReport
from services.intake.satisfaction import QUESTIONS, Figures, SatisfactionReport

# The chart's drawing box (SVG user units; the page scales it to the screen's width).
CHART_WIDTH = 320
ROW_HEIGHT = 46
BAR_TOP = 20  # below the procedure's name
BAR_HEIGHT = 14
RATE_ROOM = 64  # right of the longest bar, for "100 %"
LABEL_CHARS = 44  # a longer name is cut in the drawing (whole in its tooltip)

ROLE_WORDS = {"citizen": "Công dân", "supervisor": "Lãnh đạo"}
KIND_WORDS = {"sms": "SMS", "postal": "Bưu chính"}
# The questions' short names on the page (their whole text is the rating page's).
QUESTION_WORDS = {
    "ease": "Dễ thực hiện",
    "attitude": "Thái độ",
    "on_time": "Đúng hẹn",
    "overall": "Hài lòng chung",
}


@dataclass(frozen=True)
class Bar:
    name: str  # whole, for the tooltip
    label: str  # as drawn
    rate_text: str
    detail: str
    y: int
    width: float


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    width: int
    height: int
    bar_top: int
    bar_height: int
    track: int  # the width of a 100 % bar
    summary: str  # what a screen reader says of the whole chart
    total_text: str  # the rate over every procedure


@dataclass(frozen=True)
class FlaggedRow:
    code: str
    procedure: str
    agency: str
    due_at: str
    due_at_iso: str
    how: str  # "trễ 2 ngày 3 giờ", "còn 5 giờ"


@dataclass(frozen=True)
class SatisfactionLine:
    name: str  # the procedure's
    answers: int
    satisfied_text: str  # the share of 4 or 5 overall
    means: tuple[tuple[str, str], ...]  # (the question's short name, its mean out of 5)


@dataclass(frozen=True)
class SatisfactionTable:
    lines: tuple[SatisfactionLine, ...]  # one per procedure, none without answers
    totals: SatisfactionLine


@dataclass(frozen=True)
class FailedRow:
    at: str
    at_iso: str
    dossier_code: str
    kind: str
    role: str
    recipient: str
    reason: str


def decimal_text(value: float, places: int) -> str:
    """4,5: the comma, as Vietnamese writes decimals; no trailing zeros."""
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".").replace(".", ",") if "." in text else text


def rate_text(rate: float | None) -> str:
    """85,7 %."""
    if rate is None:
        return "chưa có hồ sơ hoàn thành"
    return decimal_text(rate * 100, 1) + " %"


def satisfaction_table(report: SatisfactionReport) -> SatisfactionTable:
    """The report's rows in words: answers, the share satisfied, each question's mean."""
    lines = tuple(
        _satisfaction_line(row.procedure_name or row.procedure_code, row.figures)
        for row in report.rows
    )
    return SatisfactionTable(lines, _satisfaction_line("Tất cả thủ tục", report.totals))


def _satisfaction_line(name: str, figures: Figures) -> SatisfactionLine:
    means = figures.means()
    return SatisfactionLine(
        name=name,
        answers=figures.answers,
        satisfied_text=rate_text(figures.satisfied_rate) if figures.answers else "",
        means=tuple(
            (QUESTION_WORDS.get(q.name, q.text), _mean_text(means[q.name])) for q in QUESTIONS
        ),
    )


def _mean_text(mean: float | None) -> str:
    return "–" if mean is None else decimal_text(mean, 2)


def on_time_chart(report: OnTimeReport) -> Chart:
    """One bar per procedure of the report, its length the on-time rate; a procedure with
    nothing finished in the period has no bar, and says so."""
    track = CHART_WIDTH - RATE_ROOM
    bars = []
    for n, row in enumerate(report.rows):
        counts = row.counts
        in_time = counts.finished_early + counts.finished_on_time
        finished = in_time + counts.finished_late
        name = row.procedure_name or row.procedure_code
        shown = name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"
        rate = counts.on_time_rate
        bars.append(
            Bar(
                name=name,
                label=shown,
                rate_text=rate_text(rate),
                detail=f"{in_time}/{finished} hồ sơ đúng hạn" if finished else "",
                y=n * ROW_HEIGHT,
                width=round(track * (rate or 0.0), 1),
            )
        )
    total = report.totals.on_time_rate
    summary = f"Tỷ lệ đúng hạn theo thủ tục; chung: {rate_text(total)}."
    return Chart(
        bars=tuple(bars),
        width=CHART_WIDTH,
        height=max(1, len(bars)) * ROW_HEIGHT,
        bar_top=BAR_TOP,
        bar_height=BAR_HEIGHT,
        track=track,
        summary=summary,
        total_text=rate_text(total),
    )


def overdue_rows(
    dossiers: Sequence[FlaggedDossier], calendars: dict[str, WorkingCalendar], now: datetime
) -> list[FlaggedRow]:
    """How late each is, in its agency's working time since its deadline."""
    return _flagged_rows(dossiers, calendars, now, late=True)


def due_soon_rows(
    dossiers: Sequence[FlaggedDossier], calendars: dict[str, WorkingCalendar], now: datetime
) -> list[FlaggedRow]:
    """How much working time each has left before its deadline."""
    return _flagged_rows(dossiers, calendars, now, late=False)


def _flagged_rows(
    dossiers: Sequence[FlaggedDossier],
    calendars: dict[str, WorkingCalendar],
    now: datetime,
    *,
    late: bool,
) -> list[FlaggedRow]:
    rows = []
    for dossier in dossiers:
        due = dossier.due_at
        if due is None:  # a clock stopped since the flag: nothing to count from
            continue
        calendar = calendars[dossier.agency_code]
        minutes = calendar.working_minutes_between(*((due, now) if late else (now, due)))
        how = ("trễ " if late else "còn ") + lateness_text(minutes)
        rows.append(
            FlaggedRow(
                code=dossier.code,
                procedure=dossier.procedure_name or dossier.procedure_code,
                agency=dossier.agency_code,
                due_at=minute_text(due),
                due_at_iso=due.isoformat(),
                how=how,
            )
        )
    return rows


def failed_rows(notices: Sequence[SentNotice]) -> list[FailedRow]:
    return [
        FailedRow(
            at=minute_text(notice.updated_at),
            at_iso=notice.updated_at.isoformat(),
            dossier_code=notice.dossier_code or "",
            kind=KIND_WORDS.get(notice.kind, notice.kind),
            role=ROLE_WORDS.get(notice.role, notice.role),
            recipient=notice.recipient,
            reason=notice.reason or _last_detail(notice) or notice.status,
        )
        for notice in notices
    ]


def _last_detail(notice: SentNotice) -> str | None:
    return notice.history[-1].detail if notice.history else None
