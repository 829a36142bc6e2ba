"""Đánh giá mức độ hài lòng (SIPAS, the satisfaction index of Decision 766/QĐ-TTg): the
citizen rates the handling of her dossier once it was returned, and the office is judged on
the figures.

- **Who may rate**: whoever holds the link texted when the result was returned
  (services.notifier.rating_link): the dossier's code and the MAC of its id
  (services.intake.link_mac). A wrong MAC, an unknown code and a dossier whose personal data
  was erased are alike: no dossier (the page cannot tell them apart, nor can a guesser). A
  dossier not returned yet cannot be rated.
- **Once**: one rating per dossier, the table's key; a second is refused, two at the same
  moment included (the dossier's row is locked while the rating is saved).
- **What is kept**: the four answers (1 to 5), the agency and procedure, when; and the
  comment, free text that may name someone, erased with the applicant's data
  (services.intake.privacy).
- **The report**, per agency and procedure of the answers given in a period: how many, the
  mean of each question, and the share satisfied overall (4 or 5). `satisfaction_report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.text import forbidden_character
from services.intake.adapters import ratings as store
from services.intake.adapters.dossier_state import dossier_from_state
from services.intake.adapters.reports import Period, procedure_names
from services.intake.link_mac import link_mac_matches

COMMENT_MAX = 500
RETURNED = "returned"


@dataclass(frozen=True)
class Question:
    name: str  # the column and the form field
    text: str


# The four questions the provincial SIPAS surveys ask of each service.
QUESTIONS: tuple[Question, ...] = (
    Question("ease", "Thủ tục hành chính có dễ hiểu, dễ thực hiện không?"),
    Question("attitude", "Thái độ của công chức tiếp nhận, giải quyết hồ sơ"),
    Question("on_time", "Kết quả có được trả đúng hẹn không?"),
    Question("overall", "Mức độ hài lòng chung của ông/bà"),
)
SCALE: tuple[tuple[int, str], ...] = (
    (1, "Rất không hài lòng"),
    (2, "Không hài lòng"),
    (3, "Bình thường"),
    (4, "Hài lòng"),
    (5, "Rất hài lòng"),
)
assert tuple(q.name for q in QUESTIONS) == store.QUESTIONS


class Standing(StrEnum):
    OPEN = "open"  # returned, not rated: the form
    RATED = "rated"  # rated already
    NOT_RETURNED = "not_returned"  # still being handled, rejected or withdrawn


@dataclass(frozen=True)
class Target:
    """A dossier its rating link was opened for."""

    dossier_id: str
    code: str
    agency_code: str
    procedure_code: str
    procedure_name: str
    standing: Standing


class BadAnswer(ValueError):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


@dataclass(frozen=True)
class Answers:
    scores: Mapping[str, int]  # question name → 1..5
    comment: str | None


def answers_of(form: Mapping[str, str]) -> Answers:
    """The form's answers; BadAnswer naming the first field that is missing or wrong."""
    scores: dict[str, int] = {}
    for question in QUESTIONS:
        value = form.get(question.name, "").strip()
        if not value:
            raise BadAnswer(question.name, "chưa chọn mức đánh giá.")
        if value not in {str(score) for score, _ in SCALE}:
            raise BadAnswer(question.name, "mức đánh giá phải từ 1 đến 5.")
        scores[question.name] = int(value)
    # A browser sends a textarea's line ends as CR LF: one line end, not a control character.
    comment = form.get("comment", "").replace("\r\n", "\n").strip()
    if len(comment) > COMMENT_MAX:
        raise BadAnswer("comment", f"dài quá {COMMENT_MAX} ký tự.")
    if forbidden_character(comment, free_text=True) or "\ufffd" in comment:
        raise BadAnswer("comment", "có ký tự không hợp lệ.")
    return Answers(scores, comment or None)


async def find(
    conn: AsyncConnection, secret: str | None, code: str, mac: str, *, lock: bool = False
) -> Target | None:
    """The dossier this link is for; None for a link no dossier has (unknown code, wrong
    MAC, personal data erased, no MOTCUA_LINK_SECRET)."""
    row = await store.dossier_row(conn, code, lock=lock)
    if row is None or secret is None or row.personal_data_erased_at is not None:
        return None
    if not link_mac_matches(secret, row.id, mac):
        return None
    if row.rated:
        standing = Standing.RATED
    else:
        standing = Standing.OPEN if row.status == RETURNED else Standing.NOT_RETURNED
    return Target(
        row.id,
        row.code,
        row.agency_code,
        row.procedure_code,
        dossier_from_state(row.state).procedure.name,
        standing,
    )


async def rate(
    engine: AsyncEngine, secret: str | None, code: str, mac: str, answers: Answers, now: datetime
) -> tuple[Target | None, bool]:
    """Save the rating of the dossier this link is for: (the dossier as it stood, whether
    the rating was saved). Saved only for a returned dossier not rated yet."""
    async with engine.begin() as conn:
        target = await find(conn, secret, code, mac, lock=True)
        if target is None or target.standing is not Standing.OPEN:
            return target, False
        row = store.row_of(
            target.dossier_id,
            target.agency_code,
            target.procedure_code,
            answers.scores,
            answers.comment,
            now,
        )
        return target, await store.insert(conn, row)


# -- the report -----------------------------------------------------------------------------


@dataclass
class Figures:
    """The answers of one report row (or of the totals)."""

    answers: int = 0
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(store.QUESTIONS, 0))
    satisfied: int = 0

    def means(self) -> dict[str, float | None]:
        """Each question's mean answer, 2 decimals; None with no answer."""
        return {
            name: round(total / self.answers, 2) if self.answers else None
            for name, total in self.sums.items()
        }

    @property
    def satisfied_rate(self) -> float | None:
        """Tỷ lệ hài lòng: the share that answered 4 or 5 overall, 4 decimals."""
        return round(self.satisfied / self.answers, 4) if self.answers else None

    def add(self, other: Figures) -> None:
        self.answers += other.answers
        self.satisfied += other.satisfied
        for name, total in other.sums.items():
            self.sums[name] += total


@dataclass(frozen=True)
class SatisfactionRow:
    agency_code: str
    procedure_code: str
    procedure_name: str | None
    figures: Figures


@dataclass(frozen=True)
class SatisfactionReport:
    rows: list[SatisfactionRow]
    totals: Figures


async def satisfaction_report(
    conn: AsyncConnection, scope: str | None, period: Period
) -> SatisfactionReport:
    """The ratings answered in ``period`` (half-open, instants), per agency and procedure,
    of one agency (``scope``) or of all (None). Who may see which scope is
    services.intake.domain.access's (api.reports.agency_in_scope)."""
    sums = await store.sums(conn, scope, period)
    names = await procedure_names(conn, {procedure for _, procedure, *_ in sums})
    rows = [
        SatisfactionRow(agency, procedure, names.get(procedure), Figures(n, dict(s), satisfied))
        for agency, procedure, n, s, satisfied in sums
    ]
    totals = Figures()
    for row in rows:
        totals.add(row.figures)
    return SatisfactionReport(rows, totals)
