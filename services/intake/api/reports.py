"""Báo cáo tỷ lệ đúng hạn: the on-time report for supervisors (lãnh đạo) and admins."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from services.core.domain.calendar import VN_TZ
from services.core.domain.codes import AGENCY_CODE_MAX_LENGTH, AGENCY_CODE_PATTERN
from services.intake import satisfaction as sat
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


class ReportOut(BaseModel):
    """What every report starts with: its period and whose it is (null: every agency)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    agency: str | None


class OnTimeReportOut(ReportOut):
    rows: list[OnTimeRowOut]
    totals: OnTimeCountsOut


@dataclass(frozen=True)
class ReportAsked:
    """What a report was asked for: whose (None: every agency, an admin's), which days
    (Vietnam dates, both included), and whether as CSV."""

    agency: str | None
    start: date
    end: date
    csv: bool

    @property
    def period(self) -> r.Period:
        return local_days(self.start, self.end)


async def report_asked(
    ctx: Ctx,
    caller: Caller,
    agency: Annotated[
        str | None,
        Query(min_length=1, max_length=AGENCY_CODE_MAX_LENGTH, pattern=AGENCY_CODE_PATTERN),
    ] = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    format_: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> ReportAsked:
    """The query every report takes, checked: the period and who may see which agency."""
    return asked_of(ctx, caller, agency, from_, to, csv=format_ == "csv")


def asked_of(
    ctx: IntakeContext,
    caller: Principal,
    agency: str | None,
    start: date | None,
    end: date | None,
    *,
    csv: bool = False,
) -> ReportAsked:
    """The period's defaults and checks and the caller's scope, as the reports document
    them (ApiError 422 or 403 naming the field): the routes' and the dashboard's
    (web.dashboard) one rule."""
    start, end = resolve_period(start, end, ctx.clock().astimezone(VN_TZ).date())
    return ReportAsked(agency_in_scope(caller, agency), start, end, csv)


Asked = Annotated[ReportAsked, Depends(report_asked)]


def report_route(path: str, model: type[BaseModel]) -> Callable[[Any], Any]:
    """A report's route: JSON or CSV, for supervisors and admins."""
    return router.get(
        path,
        response_model=model,
        responses={**ERRORS, **CSV_RESPONSE},
        dependencies=[require("supervisor", "admin")],
    )


@report_route("/reports/on-time", OnTimeReportOut)
async def on_time_report(ctx: Ctx, asked: Asked) -> Any:
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
    report = await on_time_figures(ctx, asked)
    if asked.csv:
        return csv_response("on-time", report_csv(report), asked)
    return OnTimeReportOut(
        from_=asked.start,
        to=asked.end,
        agency=asked.agency,
        rows=[row_out(row) for row in report.rows],
        totals=counts_out(report.totals),
    )


async def on_time_figures(ctx: IntakeContext, asked: ReportAsked) -> r.OnTimeReport:
    """The on-time report's figures: this route's, and the dashboard's chart (web.dashboard),
    from the one rule."""
    async with ctx.engine.connect() as conn:
        return await r.on_time_report(conn, asked.agency, asked.period)


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


# --- satisfaction (SIPAS) ----------------------------------------------------------------

SATISFACTION_FIELDS = (
    "answers",
    *(f"mean_{q.name}" for q in sat.QUESTIONS),
    "satisfied",
    "satisfied_rate",
)
SATISFACTION_CSV_COLUMNS = ("agency_code", "procedure_code", "procedure_name", *SATISFACTION_FIELDS)


class SatisfactionFiguresOut(BaseModel):
    answers: int
    mean_ease: float | None = Field(description="mean answer to the ease of the procedure, 1-5")
    mean_attitude: float | None = Field(description="mean answer on the clerk's attitude, 1-5")
    mean_on_time: float | None = Field(description="mean answer on the result on time, 1-5")
    mean_overall: float | None = Field(description="mean overall answer, 1-5")
    satisfied: int = Field(description="answers of 4 or 5 overall")
    satisfied_rate: float | None = Field(description="satisfied / answers, 4 decimals")


class SatisfactionRowOut(SatisfactionFiguresOut):
    agency_code: str
    procedure_code: str
    procedure_name: str | None


class SatisfactionReportOut(ReportOut):
    rows: list[SatisfactionRowOut]
    totals: SatisfactionFiguresOut


@report_route("/reports/satisfaction", SatisfactionReportOut)
async def satisfaction_report(ctx: Ctx, asked: Asked) -> Any:
    """Đánh giá mức độ hài lòng (SIPAS): the citizens' ratings, per agency and procedure.

    **Who** and **period**: as `/reports/on-time` (a supervisor their agency, an admin one or
    all; `from` and `to` dates in Asia/Ho_Chi_Minh, both included, this month by default).

    **Figures**, of the ratings answered in the period, per receiving agency and procedure:
    - `answers`: how many dossiers were rated (one rating per dossier);
    - `mean_ease`, `mean_attitude`, `mean_on_time`, `mean_overall`: the mean answer (1 to 5)
      to each question, 2 decimals (ease of the procedure, the clerk's attitude, the result
      on time, overall); null without answers;
    - `satisfied`: answers of 4 (hài lòng) or 5 (rất hài lòng) overall, and `satisfied_rate`
      their share, 4 decimals.

    `totals` has the same fields over all rows. `format=csv` gives the same table as UTF-8
    CSV with a byte order mark, a header line, one line per row and a last `TOTAL` line.
    Comments are not reported: free text, erased with the applicant's data.
    """
    report = await satisfaction_figures(ctx, asked)
    if asked.csv:
        lines = [
            (row.agency_code, row.procedure_code, row.procedure_name, _figure_cells(row.figures))
            for row in report.rows
        ]
        content = table_csv(SATISFACTION_CSV_COLUMNS, lines, _figure_cells(report.totals))
        return csv_response("satisfaction", content, asked)
    return SatisfactionReportOut(
        from_=asked.start,
        to=asked.end,
        agency=asked.agency,
        rows=[
            SatisfactionRowOut(
                agency_code=row.agency_code,
                procedure_code=row.procedure_code,
                procedure_name=row.procedure_name,
                **_figures(row.figures),
            )
            for row in report.rows
        ],
        totals=SatisfactionFiguresOut(**_figures(report.totals)),
    )


async def satisfaction_figures(ctx: IntakeContext, asked: ReportAsked) -> sat.SatisfactionReport:
    """The satisfaction report's figures: this route's, and the dashboard's (web.dashboard)."""
    async with ctx.engine.connect() as conn:
        return await sat.satisfaction_report(conn, asked.agency, asked.period)


def _figures(figures: sat.Figures) -> dict[str, Any]:
    means = {f"mean_{name}": mean for name, mean in figures.means().items()}
    return {
        "answers": figures.answers,
        **means,
        "satisfied": figures.satisfied,
        "satisfied_rate": figures.satisfied_rate,
    }


def _figure_cells(figures: sat.Figures) -> list[object]:
    values = _figures(figures)
    return ["" if values[name] is None else values[name] for name in SATISFACTION_FIELDS]


# --- CSV ---------------------------------------------------------------------------------


def csv_response(name: str, content: bytes, asked: ReportAsked) -> Response:
    who = _filename_part(asked.agency or "all")
    filename = f"{name}-{who}-{asked.start}-{asked.end}.csv"
    return Response(
        content=content,
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def report_csv(report: r.OnTimeReport) -> bytes:
    lines = [(row.agency_code, row.procedure_code, row.procedure_name, _count_cells(row.counts))
             for row in report.rows]  # fmt: skip
    return table_csv(CSV_COLUMNS, lines, _count_cells(report.totals))


def table_csv(
    columns: Sequence[str],
    rows: Iterable[tuple[str, str, str | None, list[object]]],
    totals: list[object],
) -> bytes:
    """A report as CSV: the header, a line per agency and procedure, a last TOTAL line."""
    out = io.StringIO()
    writer = csv.writer(out)  # \r\n line ends: RFC 4180, and what Excel itself writes
    writer.writerow(columns)
    for agency_code, procedure_code, procedure_name, figures in rows:
        key = (agency_code, procedure_code, procedure_name or "")
        writer.writerow([*(_text_cell(v) for v in key), *figures])
    writer.writerow(["TOTAL", "", "", *totals])
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
