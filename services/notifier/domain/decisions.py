"""Who is told what, for each fact (quyết định gửi tin). Pure: events and what the notifier
remembers in, drafts of notices and postal orders out; rendering and sending come later.

Every draft carries a ``source_key``: the fact it tells. With the recipient and the template
it is the notice's identity, so a fact told twice is one notice. It is the event id for a
citizen's notice, and a dossier-level key where a notice must go once whatever the number of
events (an overdue alert goes once per dossier, though each new deadline may be missed again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from schemas.events import (
    Contract,
    DeadlineOverdue,
    DossierEvent,
    DossierExtended,
    DossierReceived,
    DossierRejected,
    DossierReturned,
    DossierStatus,
    DossierTransferred,
    PersonalDataErased,
    ResultReady,
    StepOverdue,
    SupplementReceived,
    SupplementRequested,
)
from services.core.domain.deadline_projection import RANK_OVERDUE, mark_of
from services.core.domain.lifecycle import CLOCK_STOPPED_STATUSES, PENDING_STATUSES
from services.notifier.domain.notices import (
    PLACEHOLDER_LIMITS,
    POSTAL_STATUS_TEXTS,
    NoticeKey,
    lateness_text,
)
from services.notifier.domain.templates import Value


class Audience(StrEnum):
    CITIZEN = "citizen"  # công dân, tổ chức
    SUPERVISOR = "supervisor"  # lãnh đạo cơ quan


@dataclass(frozen=True)
class Contact:
    """Someone to text. Personal data: never logged."""

    name: str
    phone: str


# A card's applicant once erased (PersonalDataErased): no name, no number.
ERASED = Contact("", "")


@dataclass(frozen=True)
class DossierRef:
    dossier_id: str
    code: str
    agency_code: str


@dataclass(frozen=True)
class DossierCard:
    """What the notifier remembers of a dossier: who to text and where to send the result."""

    dossier_id: str
    code: str
    agency_code: str
    procedure_name: str
    applicant: Contact
    return_method: str
    return_address: Mapping[str, str] | None
    status: str
    handling_agency: str | None = None  # after an inter-agency transfer; None: agency_code

    @property
    def erased(self) -> bool:
        """The applicant's data was erased: nobody is texted or sent anything any more."""
        return self.applicant == ERASED

    def without_personal_data(self) -> DossierCard:
        """The card once the intake erased the applicant's data (docs/privacy.md): the
        dossier's code, agency, procedure, status and deadline stay."""
        return replace(self, applicant=ERASED, return_address=None)

    @property
    def held_by(self) -> str:
        """The agency holding the dossier now."""
        return self.handling_agency or self.agency_code

    @classmethod
    def of_received(cls, ref: DossierRef, payload: DossierReceived) -> DossierCard:
        address = payload.return_address.model_dump() if payload.return_address else None
        return cls(
            dossier_id=ref.dossier_id,
            code=ref.code,
            agency_code=ref.agency_code,
            procedure_name=payload.procedure_name,
            applicant=Contact(payload.applicant.full_name, payload.applicant.phone),
            return_method=payload.return_method,
            return_address=address,
            status=payload.status.value,
        )


@dataclass(frozen=True)
class NoticePolicy:
    """The notifier's settings that shape what it says."""

    office: str  # tên cơ quan in the text
    # Where to look a dossier up (tra cứu), given its code (None: a text about no one
    # dossier): services.notifier.lookup_link.
    lookup: Callable[[str | None], str]
    collection_place: str  # nơi trả kết quả at the counter
    stale_after: timedelta  # an action older than this is history, not news
    # How long an overdue flag waits after the last news of its dossier (PendingAlert).
    alert_settle: timedelta = timedelta(minutes=5)
    # The rating page of a returned dossier, given its id and code; None: no link can be
    # made, and "returned" says thanks only (services.notifier.rating_link).
    rating: Callable[[str, str], str | None] = lambda dossier_id, code: None

    def common(self, procedure: str, code: str | None) -> dict[str, Value]:
        return {"office": self.office, "lookup": self.lookup(code), "procedure": procedure}


@dataclass(frozen=True)
class NoticeDraft:
    source_key: str
    audience: Audience
    phone: str
    key: NoticeKey
    values: Mapping[str, Value]
    dossier_id: str | None
    dossier_code: str | None
    agency_code: str
    skip_reason: str | None = None  # recorded, never sent


@dataclass(frozen=True)
class PostalOrderDraft:
    """Đơn hàng chuyển phát kết quả (BCCI): reference = dossier code."""

    dossier_id: str
    reference: str
    receiver: Contact
    address: Mapping[str, str]
    content: str


@dataclass(frozen=True)
class Decision:
    card: DossierCard | None
    notices: tuple[NoticeDraft, ...] = ()
    postal_order: PostalOrderDraft | None = None
    skipped: str | None = None  # why nothing was decided, for the log


# -- citizens -------------------------------------------------------------------------------


def on_dossier_event(
    card: DossierCard | None,
    ref: DossierRef,
    event_id: str,
    payload: DossierEvent,
    now: datetime,
    policy: NoticePolicy,
) -> Decision:
    """The citizen's notices (and the postal order) an action of the dossier calls for."""
    if card is not None and card.erased:
        # Nothing brings the data back, nor texts anyone: not a dossier.received replayed
        # from a topic that kept it longer than the retention (docs/privacy.md).
        return Decision(card, skipped="personal_data_erased")
    if isinstance(payload, DossierReceived):
        card = DossierCard.of_received(ref, payload)
    if card is None:
        return Decision(None, skipped="dossier_unknown")
    card = replace(card, status=payload.status.value, code=ref.code or card.code)
    if isinstance(payload, PersonalDataErased):
        return Decision(card.without_personal_data())
    if isinstance(payload, DossierTransferred):
        card = replace(card, handling_agency=payload.to_agency)
    stale = now - payload.at > policy.stale_after
    if isinstance(payload, ResultReady) and payload.return_method == "postal":
        return _postal_return(card, stale)
    told = _citizen_notice(payload, policy, card)
    if told is None:
        return Decision(card)
    key, values = told
    notice = NoticeDraft(
        source_key=event_id,
        audience=Audience.CITIZEN,
        phone=card.applicant.phone,
        key=key,
        values={**policy.common(card.procedure_name, card.code), "code": card.code, **values},
        dossier_id=card.dossier_id,
        dossier_code=card.code,
        agency_code=card.agency_code,
        skip_reason="historical_action" if stale else None,
    )
    return Decision(card, (notice,))


def _citizen_notice(
    payload: DossierEvent, policy: NoticePolicy, card: DossierCard
) -> tuple[NoticeKey, dict[str, Value]] | None:
    match payload:
        case DossierReceived() if payload.due_at is not None:
            return NoticeKey.RECEIVED, {"appointment": payload.due_at}
        case SupplementRequested():
            return NoticeKey.SUPPLEMENT_REQUESTED, {"items": "; ".join(payload.items)}
        case SupplementReceived() if payload.due_at is not None:
            return NoticeKey.SUPPLEMENT_RECEIVED, {"appointment": payload.due_at}
        case DossierRejected():
            return NoticeKey.REJECTED, {"reason": payload.reason}
        case ResultReady():
            return NoticeKey.RESULT_READY_COUNTER, {"place": policy.collection_place}
        case DossierExtended() if payload.due_at is not None:
            return NoticeKey.EXTENDED, {"appointment": payload.due_at}
        case DossierReturned():
            rating = policy.rating(card.dossier_id, card.code)
            if rating is None:
                return NoticeKey.RETURNED, {}
            return NoticeKey.RETURNED_RATING, {"rating": rating}
    return None


def _postal_return(card: DossierCard, stale: bool) -> Decision:
    if stale:
        return Decision(card, skipped="historical_action")
    if not card.return_address:
        return Decision(card, skipped="no_return_address")
    order = PostalOrderDraft(
        dossier_id=card.dossier_id,
        reference=card.code,
        receiver=card.applicant,
        address=card.return_address,
        content=f"Kết quả giải quyết hồ sơ {card.code}: {card.procedure_name}"[:200],
    )
    return Decision(card, postal_order=order)


def on_postal_order_placed(
    card: DossierCard, tracking_code: str, policy: NoticePolicy
) -> NoticeDraft:
    """The result left by post: the citizen gets the tracking code (mã bưu gửi)."""
    return NoticeDraft(
        skip_reason="personal_data_erased" if card.erased else None,
        source_key=f"postal:{card.dossier_id}",
        audience=Audience.CITIZEN,
        phone=card.applicant.phone,
        key=NoticeKey.RESULT_READY_POSTAL,
        values={
            **policy.common(card.procedure_name, card.code),
            "code": card.code,
            "tracking": tracking_code,
        },
        dossier_id=card.dossier_id,
        dossier_code=card.code,
        agency_code=card.agency_code,
    )


# -- supervisors ----------------------------------------------------------------------------


OVERDUE = "overdue"  # the dossier's deadline passed: its agency's supervisors
STEP_OVERDUE = "step_overdue"  # an inter-agency step's time passed: the late agency's


@dataclass(frozen=True)
class PendingAlert:
    """A flag not told yet: it waits until it is true of the dossier as known.

    A flag may be raised between two events of a history being imported (the tracker's scan
    saw a deadline long past before the events that end the clock arrived), or before the
    notifier has heard of the dossier at all (the topics are read independently). So the
    alert waits for its dossier to be known and for ``settle_until`` (no news of the dossier
    for ``NoticePolicy.alert_settle``), and is decided then, on what is known then
    (``decide_alert``). An SMS cannot be recalled; a few minutes' wait costs nothing on a
    dossier already late. One pending alert of each ``kind`` per dossier.
    """

    dossier_id: str
    kind: str  # OVERDUE | STEP_OVERDUE
    dossier_code: str
    agency_code: str  # whose supervisors are told: the dossier's, or the late step's
    version: int  # the deadline version flagged (0 for a step: steps have none)
    step_number: int | None
    due_at: datetime  # the deadline, or the step's due time
    overdue_minutes: int  # how late when flagged (0 for a step)
    raised_at: datetime
    settle_until: datetime


def follow_flag(
    alerts: Mapping[str, PendingAlert],
    ref: DossierRef,
    payload: Contract,
    now: datetime,
    policy: NoticePolicy,
) -> dict[str, PendingAlert]:
    """What one deadline event makes of a dossier's pending alerts (by kind): a flag sets
    its alert (a newer deadline version's, or a later step's, replaces it); any later word of
    the tracker on the deadline (a new one, a clock stopped or closed: a mark past the
    flag's) takes the overdue alert away, for it is no longer true; a closed clock takes
    every alert away."""
    pending = dict(alerts)
    settle = now + policy.alert_settle
    if isinstance(payload, DeadlineOverdue):
        known = pending.get(OVERDUE)
        if known is None or payload.version >= known.version:
            pending[OVERDUE] = PendingAlert(
                ref.dossier_id,
                OVERDUE,
                ref.code,
                ref.agency_code,
                payload.version,
                None,
                payload.due_at,
                payload.overdue_working_minutes,
                now,
                settle,
            )
        return pending
    if isinstance(payload, StepOverdue):
        known = pending.get(STEP_OVERDUE)
        if known is None or payload.step_number >= (known.step_number or 0):
            pending[STEP_OVERDUE] = PendingAlert(
                ref.dossier_id,
                STEP_OVERDUE,
                ref.code,
                payload.agency_code,
                0,
                payload.step_number,
                payload.step_due_at,
                0,
                now,
                settle,
            )
        return pending
    mark = mark_of(payload)
    if mark is None:
        return pending
    if mark.closed:
        return {}
    known = pending.get(OVERDUE)
    if known is not None and _past_the_flag(known, mark.version, mark.rank):
        del pending[OVERDUE]
    return pending


def _past_the_flag(alert: PendingAlert, version: int, rank: int) -> bool:
    return (version, rank) > (alert.version, RANK_OVERDUE)


def decide_alert(
    alert: PendingAlert,
    card: DossierCard,
    mark: tuple[int, int],
    supervisors: Iterable[Contact],
    now: datetime,
    policy: NoticePolicy,
    agency_name: str | None = None,
) -> tuple[NoticeDraft, ...] | str:
    """Each supervisor of the agency concerned, once per dossier (once per step for a step),
    if the flag is still true of the dossier as known (its card, and the card's deadline
    ``mark``: version and rank); else why not (the alert is then dropped, and a later flag,
    if the dossier runs late again, is a new one).

    Hồ sơ quá hạn goes to the dossier's agency; a step overdue (quá hạn bước liên thông) to
    the agency holding the late step, while it still holds it."""
    status = DossierStatus(card.status)
    if status not in PENDING_STATUSES:
        return f"dossier_{status.value}"
    if status in CLOCK_STOPPED_STATUSES:
        return "clock_stopped"
    if alert.due_at > now:
        return "not_due_yet"
    ref = DossierRef(card.dossier_id, card.code or alert.dossier_code, alert.agency_code)
    values: dict[str, Value] = {
        **policy.common(card.procedure_name, card.code),
        "code": ref.code,
        "agency": agency_name or alert.agency_code,  # a name, once the directory gave one
    }
    if alert.kind == STEP_OVERDUE:
        if card.held_by != alert.agency_code:
            return "step_finished"
        values["appointment"] = alert.due_at
        key = f"step_overdue:{ref.dossier_id}:{alert.step_number}"
        return _to_supervisors(key, NoticeKey.STEP_OVERDUE, values, supervisors, ref)
    if _past_the_flag(alert, *mark):
        return "deadline_moved"
    values["late"] = lateness_text(alert.overdue_minutes)
    return _to_supervisors(
        f"overdue:{ref.dossier_id}", NoticeKey.OVERDUE_ALERT, values, supervisors, ref
    )


def on_postal_problem(
    card: DossierCard,
    tracking_code: str,
    status: str,
    supervisors: Iterable[Contact],
    policy: NoticePolicy,
) -> tuple[NoticeDraft, ...]:
    """The result did not reach the citizen (failed, returned to sender)."""
    values = {
        **policy.common(card.procedure_name, card.code),
        "code": card.code,
        "tracking": tracking_code,
        "postal_status": POSTAL_STATUS_TEXTS.get(status, status),
    }
    ref = DossierRef(card.dossier_id, card.code, card.agency_code)
    return _to_supervisors(
        f"postal:{card.dossier_id}:{status}", NoticeKey.POSTAL_PROBLEM, values, supervisors, ref
    )


def _to_supervisors(
    source_key: str,
    key: NoticeKey,
    values: Mapping[str, Value],
    supervisors: Iterable[Contact],
    ref: DossierRef,
) -> tuple[NoticeDraft, ...]:
    return tuple(
        NoticeDraft(
            source_key=source_key,
            audience=Audience.SUPERVISOR,
            phone=phone,
            key=key,
            values=values,
            dossier_id=ref.dossier_id,
            dossier_code=ref.code,
            agency_code=ref.agency_code,
        )
        for phone in _distinct_phones(supervisors)
    )


def _distinct_phones(supervisors: Iterable[Contact]) -> list[str]:
    """One message per person: a supervisor registered twice is still one phone."""
    return list(dict.fromkeys(s.phone for s in supervisors))


# -- daily digest ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AgencyDigest:
    """Tổng hợp hằng ngày of one agency: open dossiers due soon and overdue."""

    agency_code: str
    due_soon: int
    overdue: int
    oldest_overdue: Sequence[str] = field(default_factory=tuple)  # codes, oldest first


def digest_notices(
    digest: AgencyDigest,
    day: date,
    supervisors: Iterable[Contact],
    policy: NoticePolicy,
    agency_name: str | None = None,
) -> tuple[NoticeDraft, ...]:
    """One message per supervisor, none on a day with nothing due soon or overdue."""
    if digest.due_soon == 0 and digest.overdue == 0:
        return ()
    values: dict[str, Value] = {
        **policy.common("", None),
        "agency": agency_name or digest.agency_code,
        "due_soon": digest.due_soon,
        "overdue": digest.overdue,
        "oldest": _codes_that_fit(digest.oldest_overdue, PLACEHOLDER_LIMITS["oldest"]),
    }
    return tuple(
        NoticeDraft(
            source_key=f"digest:{digest.agency_code}:{day.isoformat()}",
            audience=Audience.SUPERVISOR,
            phone=phone,
            key=NoticeKey.DAILY_DIGEST,
            values=values,
            dossier_id=None,
            dossier_code=None,
            agency_code=digest.agency_code,
        )
        for phone in _distinct_phones(supervisors)
    )


def _codes_that_fit(codes: Sequence[str], limit: int) -> str:
    """Whole codes only: a cut code would send a supervisor looking for a dossier that
    does not exist."""
    text = ""
    for code in codes:
        candidate = f"{text}, {code}" if text else code
        if len(candidate) > limit:
            break
        text = candidate
    return text or "không có"
