"""Báo cáo tỷ lệ đúng hạn: the on-time report for supervisors (lãnh đạo) and admins."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.core.domain.calendar import VN_TZ
from services.core.domain.codes import AGENCY_CODE_MAX_LENGTH, AGENCY_CODE_PATTERN
from services.intake.adapters import reports as r
from services.intake.adapters.tokens import Principal
from services.intake.api import models as m
from services.intake.api.deps import Caller, Ctx, require
from services.intake.api.dossiers import ERRORS
from services.intake.api.errors import ApiError
from services.intake.context import IntakeContext
from services.intake.domain import access

router = APIRouter(tags=["reports"])
MAX_PERIOD_DAYS = 366
# The same range the API accepts for times: beyond it, midnight in +07:00 overflows in UTC.
EARLIEST_DAY = m.FIRST_DAY
LATEST_DAY = m.LAST_DAY
COUNT_FIELDS = (
    "received",
    "finished_early",
    "finished_on_time",
    "finished_late",
    "in_progress",
    "overdue",
    "supplement_violations",
)
CSV_COLUMNS = ("agency_code", "procedure_code", "procedure_name", *COUNT_FIELDS, "on_time_rate")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report; as CSV with `format=csv`.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
# Spreadsheet programs run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class OnTimeCountsOut(BaseModel):
    received: int
    finished_early: int
    finished_on_time: int
    finished_late: int
    in_progress: int
    overdue: int
    supplement_violations: int
    on_time_rate: float | None = Field(description="(early + on time) / finished, 4 decimals")


class OnTimeRowOut(OnTimeCountsOut):
    agency_code: str
    procedure_code: str
    procedure_name: str | None


class OnTimeReportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    agency: str | None
    rows: list[OnTimeRowOut]
    totals: OnTimeCountsOut


@router.get(
    "/reports/on-time",
    response_model=OnTimeReportOut,
    responses={**ERRORS, **CSV_RESPONSE},
    dependencies=[require("supervisor", "admin")],
)
async def on_time_report(
    ctx: Ctx,
    caller: Caller,
    agency: Annotated[
        str | None,
        Query(min_length=1, max_length=AGENCY_CODE_MAX_LENGTH, pattern=AGENCY_CODE_PATTERN),
    ] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Any:
    """Báo cáo tỷ lệ đúng hạn: per agency and procedure, how dossiers were handled.

    **Who**: a supervisor sees only their own agency (no `agency` → theirs; another → 403);
    an admin sees one agency or, without `agency`, all of them. Clerks get 403.

    **Period**: `from` and `to` are dates in Asia/Ho_Chi_Minh, both included. `to` defaults
    to today, `from` to the first day of `to`'s month. `from` after `to`, or a period longer
    than 366 days, is a 422 naming `from`; dates outside 2000–2099 are refused too.

    **Counts**, per receiving agency (`agency_code`, the one-stop office, even when the
    dossier was transferred) and procedure:
    - `received`: dossiers received in the period.
    - `finished_early`, `finished_on_time`, `finished_late`: dossiers whose result became
      ready in the period, by outcome. Rejected and withdrawn dossiers have no outcome and
      are not counted.
    - `in_progress`: dossiers received up to the end of the period that are still pending
      **now** (received, in_progress, transferred, awaiting_supplement, paused).
    - `overdue`: of those, the ones the tracker has flagged overdue.
    - `supplement_violations`: dossiers received in the period with two or more supplement
      requests (the law wants all missing items asked for at once).
    - `on_time_rate`: (early + on time) / (early + on time + late), rounded to 4 decimals;
      null when nothing finished.

    `totals` has the same fields over all rows. `format=csv` gives the same table as UTF-8
    CSV with a byte order mark (so Excel shows Vietnamese names), a header line, one line per
    row and a last `TOTAL` line.
    """
    figures = await on_time_figures(ctx, caller, agency, from_, to)
    start, end, scope, report = figures.start, figures.end, figures.agency, figures.report
    if format_ == "csv":
        return csv_response(report, scope, start, end)
    return OnTimeReportOut(
        from_=start,
        to=end,
        agency=scope,
        rows=[row_out(row) for row in report.rows],
        totals=counts_out(report.totals),
    )


@dataclass(frozen=True)
class OnTimeFigures:
    start: date
    end: date
    agency: str | None  # None: every agency (an admin's)
    report: r.OnTimeReport


async def on_time_figures(
    ctx: IntakeContext,
    caller: Principal,
    agency: str | None,
    start: date | None,
    end: date | None,
) -> OnTimeFigures:
    """The on-time report's figures for the caller: this route's, and the dashboard's chart
    (web.dashboard), from the one rule. The period's defaults and checks, the caller's
    scope (ApiError 422 or 403 naming the field) as the route documents them."""
    start, end = resolve_period(start, end, ctx.clock().astimezone(VN_TZ).date())
    scope = agency_in_scope(caller, agency)
    async with ctx.engine.connect() as conn:
        report = await r.on_time_report(conn, scope, local_days(start, end))
    return OnTimeFigures(start, end, scope, report)


def resolve_period(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    end = end or today
    start = start or end.replace(day=1)
    # `to` first: a default `from` is derived from it, so the fault would be in `to`.
    for name, day in (("to", end), ("from", start)):
        if not EARLIEST_DAY <= day <= LATEST_DAY:
            raise _invalid(name, "must be between 2000-01-01 and 2099-12-31")
    if start > end:
        raise _invalid("from", "must not be after to")
    if (end - start).days + 1 > MAX_PERIOD_DAYS:
        raise _invalid("from", f"the period may span at most {MAX_PERIOD_DAYS} days")
    return start, end


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "validation_error", f"{field}: {message}", field)


def agency_in_scope(caller: Principal, agency: str | None) -> str | None:
    """The agency to report on; None means all (admins only)."""
    scope = access.agency_scope(caller)
    if scope is None:
        return agency
    # As the dossier list does for ?agency= of another agency: a refusal, not an empty report.
    if not access.may_see_agency(caller, agency or scope):
        raise ApiError(403, "forbidden", "you may see only your own agency's report", "agency")
    return scope


def local_days(start: date, end: date) -> r.Period:
    """From the first instant of ``start`` to the first instant after ``end``, in Vietnam."""
    return r.Period(
        start=datetime.combine(start, time.min, VN_TZ),
        end=datetime.combine(end + timedelta(days=1), time.min, VN_TZ),
    )


def counts_out(counts: r.Counts) -> OnTimeCountsOut:
    values = {name: getattr(counts, name) for name in COUNT_FIELDS}
    return OnTimeCountsOut(**values, on_time_rate=counts.on_time_rate)


def row_out(row: r.ReportRow) -> OnTimeRowOut:
    return OnTimeRowOut(
        agency_code=row.agency_code,
        procedure_code=row.procedure_code,
        procedure_name=row.procedure_name,
        **counts_out(row.counts).model_dump(),
    )


# --- CSV ---------------------------------------------------------------------------------


def csv_response(report: r.OnTimeReport, agency: str | None, start: date, end: date) -> Response:
    filename = f"on-time-{_filename_part(agency or 'all')}-{start}-{end}.csv"
    return Response(
        content=report_csv(report),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def report_csv(report: r.OnTimeReport) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)  # \r\n line ends: RFC 4180, and what Excel itself writes
    writer.writerow(CSV_COLUMNS)
    for row in report.rows:
        key = (row.agency_code, row.procedure_code, row.procedure_name or "")
        writer.writerow([*(_text_cell(v) for v in key), *_count_cells(row.counts)])
    writer.writerow(["TOTAL", "", "", *_count_cells(report.totals)])
    # The BOM is what makes Excel read the file as UTF-8 rather than the local code page.
    return out.getvalue().encode("utf-8-sig")


def _count_cells(counts: r.Counts) -> list[object]:
    rate = counts.on_time_rate
    return [*(getattr(counts, name) for name in COUNT_FIELDS), "" if rate is None else rate]


def _text_cell(value: str) -> str:
    # Names come from people: one starting with "=" must not become a formula in Excel.
    return "'" + value if value.startswith(_FORMULA_START) else value


def _filename_part(value: str) -> str:
    # A header value must stay plain ASCII without quotes, whatever a token's agency holds.
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", value)
