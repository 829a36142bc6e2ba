"""Who is told what: the notifier's pure decisions, rendered with the default templates."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from schemas.events import (
    Address,
    Applicant,
    DeadlineChanged,
    DeadlineClosed,
    DeadlineOverdue,
    DossierPaused,
    DossierReceived,
    DossierReturned,
    DossierStatus,
    DossierTransferred,
    DossierWithdrawn,
    ResultReady,
    StepOverdue,
    SupplementRequested,
    TimeLimitPayload,
)
from services.core.domain.calendar import VN_TZ
from services.notifier.domain.decisions import (
    OVERDUE,
    STEP_OVERDUE,
    AgencyDigest,
    Audience,
    Contact,
    DossierRef,
    NoticePolicy,
    PendingAlert,
    decide_alert,
    digest_notices,
    follow_flag,
    on_dossier_event,
    on_postal_order_placed,
    on_postal_problem,
)
from services.notifier.domain.notices import NoticeKey
from services.notifier.domain.templates import default_templates
from services.notifier.lookup_link import LookupLink


def vn(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=VN_TZ)


POLICY = NoticePolicy(
    office="UBND Quan 1",
    lookup=LookupLink(fixed="dichvucong.gov.vn"),
    collection_place="Bo phan Mot cua UBND Quan 1",
    stale_after=timedelta(hours=24),
)
REF = DossierRef("d-1", "Q1-260302-0001", "Q1")
GSM = default_templates()
UCS = default_templates(unicode=True)


def received(return_method: str = "postal", at: datetime | None = None) -> DossierReceived:
    at = at or vn(2, 9, 15)
    return DossierReceived(
        at=at,
        status=DossierStatus.RECEIVED,
        due_at=vn(9, 9, 15),
        procedure_code="1.001612",
        procedure_name="Đăng ký thành lập hộ kinh doanh",
        channel="counter",
        return_method=return_method,  # type: ignore[arg-type]
        return_address=Address(
            street="12 Lê Lợi", ward="Bến Nghé", district="Quận 1", province="TP Hồ Chí Minh"
        ),
        applicant=Applicant(full_name="Nguyễn Thị Hương", phone="+84912345678"),
        received_at=at,
        clock_started_at=at,
        time_limit=TimeLimitPayload(value=5, unit="working_days"),
        office_schedule={},
    )


def card_after_received(return_method: str = "postal"):  # type: ignore[no-untyped-def]
    decision = on_dossier_event(None, REF, "e-1", received(return_method), vn(2, 9, 16), POLICY)
    assert decision.card is not None
    return decision.card


def test_received_texts_the_code_and_the_appointment_to_the_minute() -> None:
    decision = on_dossier_event(None, REF, "e-1", received(), vn(2, 9, 16), POLICY)
    (notice,) = decision.notices
    assert notice.key is NoticeKey.RECEIVED and notice.audience is Audience.CITIZEN
    assert notice.source_key == "e-1" and notice.phone == "+84912345678"
    sms = GSM.render(notice.key, notice.values)
    assert "Q1-260302-0001" in sms.text and "09:15 09/03/2026" in sms.text
    assert sms.text.isascii() and sms.segments.parts <= 2
    assert decision.card is not None and decision.card.code == "Q1-260302-0001"


def test_unicode_mode_keeps_the_diacritics_within_its_cap() -> None:
    decision = on_dossier_event(None, REF, "e-1", received(), vn(2, 9, 16), POLICY)
    sms = UCS.render(decision.notices[0].key, decision.notices[0].values)
    assert "tiếp nhận" in sms.text and sms.segments.parts <= 4


def test_supplement_request_lists_every_missing_item() -> None:
    card = card_after_received()
    payload = SupplementRequested(
        at=vn(3, 10),
        status=DossierStatus.AWAITING_SUPPLEMENT,
        due_at=None,
        items=["Bản sao CCCD", "Giấy chứng nhận quyền sử dụng đất"],
        reason="thiếu giấy tờ",
        request_number=1,
    )
    (notice,) = on_dossier_event(card, REF, "e-2", payload, vn(3, 10, 1), POLICY).notices
    text = GSM.render(notice.key, notice.values).text
    assert "Ban sao CCCD; Giay chung nhan quyen su dung dat" in text


def test_an_old_imported_action_is_recorded_but_never_texted() -> None:
    card = card_after_received()
    payload = DossierReturned(at=vn(3, 10), status=DossierStatus.RETURNED, due_at=None)
    fresh = on_dossier_event(card, REF, "e-3", payload, vn(4, 9, 59), POLICY).notices[0]
    old = on_dossier_event(card, REF, "e-3", payload, vn(4, 10, 1), POLICY).notices[0]
    assert fresh.skip_reason is None
    assert old.skip_reason == "historical_action"


def test_postal_return_orders_pickup_and_texts_nothing_until_the_tracking_code() -> None:
    card = card_after_received("postal")
    payload = ResultReady(
        at=vn(6, 15),
        status=DossierStatus.RESULT_READY,
        due_at=vn(9, 9, 15),
        return_method="postal",
        original_due_at=None,
        outcome="early",
    )
    decision = on_dossier_event(card, REF, "e-4", payload, vn(6, 15, 1), POLICY)
    assert decision.notices == ()
    order = decision.postal_order
    assert order is not None and order.reference == "Q1-260302-0001"
    assert order.receiver == Contact("Nguyễn Thị Hương", "+84912345678")
    assert order.address["province"] == "TP Hồ Chí Minh"
    placed = on_postal_order_placed(card, "EB123456789VN", POLICY)
    assert "EB123456789VN" in GSM.render(placed.key, placed.values).text
    assert placed.source_key == "postal:d-1"


def test_an_old_postal_result_orders_nothing() -> None:
    card = card_after_received("postal")
    payload = ResultReady(
        at=vn(6, 15),
        status=DossierStatus.RESULT_READY,
        due_at=vn(9, 9, 15),
        return_method="postal",
        original_due_at=None,
        outcome="early",
    )
    decision = on_dossier_event(card, REF, "e-4", payload, vn(9, 15), POLICY)
    assert decision.postal_order is None and decision.skipped == "historical_action"


def test_counter_return_says_where_to_collect() -> None:
    card = card_after_received("counter")
    payload = ResultReady(
        at=vn(6, 15),
        status=DossierStatus.RESULT_READY,
        due_at=vn(9, 9, 15),
        return_method="counter",
        original_due_at=None,
        outcome="early",
    )
    (notice,) = on_dossier_event(card, REF, "e-4", payload, vn(6, 15, 1), POLICY).notices
    assert notice.key is NoticeKey.RESULT_READY_COUNTER
    assert "Bo phan Mot cua UBND Quan 1" in GSM.render(notice.key, notice.values).text


@pytest.mark.parametrize(
    "payload",
    [
        DossierPaused(
            at=vn(3, 10),
            status=DossierStatus.PAUSED,
            due_at=None,
            reason="nghĩa vụ tài chính",
            remaining_working_minutes=600,
        ),
        DossierWithdrawn(at=vn(3, 10), status=DossierStatus.WITHDRAWN, due_at=None, reason="x"),
    ],
)
def test_internal_steps_text_nobody(payload: object) -> None:
    decision = on_dossier_event(
        card_after_received(),
        REF,
        "e-5",
        payload,  # type: ignore[arg-type]
        vn(3, 10, 1),
        POLICY,
    )
    assert decision.notices == () and decision.card is not None
    assert decision.card.status == payload.status.value  # type: ignore[attr-defined]


def test_an_event_for_an_unknown_dossier_is_skipped() -> None:
    payload = DossierReturned(at=vn(3, 10), status=DossierStatus.RETURNED, due_at=None)
    decision = on_dossier_event(None, REF, "e-6", payload, vn(3, 10, 1), POLICY)
    assert decision.card is None and decision.skipped == "dossier_unknown"


def overdue(version: int = 1, minutes: int = 600, day: int = 9) -> DeadlineOverdue:
    return DeadlineOverdue(
        due_at=vn(day, 9, 15),
        version=version,
        overdue_working_minutes=minutes,
        handling_agency="Q1",
    )


def flagged(version: int = 1, minutes: int = 600) -> PendingAlert:
    return follow_flag({}, REF, overdue(version, minutes), vn(10, 9), POLICY)[OVERDUE]


def step_flag(step: int = 1, agency: str = "STNMT") -> PendingAlert:
    payload = StepOverdue(
        agency_code=agency,
        step_number=step,
        handed_over_at=vn(3, 9),
        step_due_at=vn(5, 9),
    )
    return follow_flag({}, REF, payload, vn(10, 9), POLICY)[STEP_OVERDUE]


def test_an_overdue_flag_waits_and_later_news_of_the_deadline_takes_it_away() -> None:
    alert = flagged()
    assert (alert.version, alert.overdue_minutes) == (1, 600)
    assert alert.settle_until == vn(10, 9) + POLICY.alert_settle
    held = {OVERDUE: alert}
    # The same flag again, or an older one: the alert stands.
    assert OVERDUE in follow_flag(held, REF, overdue(1), vn(10, 10), POLICY)
    newer = {OVERDUE: flagged(2)}
    assert follow_flag(newer, REF, overdue(1), vn(10, 10), POLICY) == newer
    # Older marks leave it; a new deadline, a stopped clock or a closed one take it away.
    stale = DeadlineChanged(due_at=vn(9, 9, 15), version=1, reason="received")
    assert follow_flag(held, REF, stale, vn(10, 10), POLICY) == held
    moved = DeadlineChanged(due_at=vn(20, 9), version=2, reason="extended")
    stopped = DeadlineChanged(due_at=None, version=1, reason="paused")
    closed = DeadlineClosed(
        reason="withdrawn",
        outcome=None,
        finished_at=vn(10, 9),
        due_at=None,
        original_due_at=None,
        version=1,
    )
    for word in (moved, stopped, closed):
        assert follow_flag(held, REF, word, vn(10, 10), POLICY) == {}
    # A step's flag is not about the deadline: only the end of the clock takes it away.
    both = {OVERDUE: alert, STEP_OVERDUE: step_flag()}
    assert follow_flag(both, REF, moved, vn(10, 10), POLICY) == {STEP_OVERDUE: step_flag()}
    assert follow_flag(both, REF, closed, vn(10, 10), POLICY) == {}


def test_overdue_alerts_each_supervisor_once_per_dossier() -> None:
    people = [Contact("A", "+84901000001"), Contact("B", "+84901000002")]
    twice = people + [Contact("A again", "+84901000001")]
    drafts = decide_alert(flagged(), card_after_received(), (1, 2), twice, vn(10, 10), POLICY)
    assert isinstance(drafts, tuple)
    assert [d.phone for d in drafts] == ["+84901000001", "+84901000002"]
    assert {d.source_key for d in drafts} == {"overdue:d-1"}
    card = card_after_received()
    later = decide_alert(flagged(2, 60), card, (2, 2), people, vn(12, 10), POLICY)
    assert isinstance(later, tuple) and {d.source_key for d in later} == {"overdue:d-1"}
    text = GSM.render(drafts[0].key, drafts[0].values).text
    assert "1 ngay 2 gio" in text and "Q1-260302-0001" in text
    assert "Dang ky thanh lap ho kinh doanh" in text


def test_a_late_step_alerts_the_supervisors_of_the_agency_holding_it() -> None:
    transferred = DossierTransferred(
        at=vn(3, 9),
        status=DossierStatus.TRANSFERRED,
        due_at=vn(9, 9, 15),
        from_agency="Q1",
        to_agency="STNMT",
        allotted_hours=16,
        step_due_at=vn(5, 9),
    )
    decision = on_dossier_event(card_after_received(), REF, "e-2", transferred, vn(3, 9, 1), POLICY)
    assert decision.card is not None and decision.card.held_by == "STNMT"
    people = [Contact("C", "+84901000003")]
    drafts = decide_alert(step_flag(), decision.card, (1, 0), people, vn(10, 10), POLICY)
    assert isinstance(drafts, tuple)
    (draft,) = drafts
    assert draft.source_key == "step_overdue:d-1:1" and draft.key == NoticeKey.STEP_OVERDUE
    text = GSM.render(draft.key, draft.values).text
    assert "STNMT" in text and "09:00 05/03/2026" in text and "Q1-260302-0001" in text
    # The step handed back before the alert was told: nothing is said.
    back = replace(decision.card, handling_agency="Q1")
    assert decide_alert(step_flag(), back, (1, 0), people, vn(10, 10), POLICY) == "step_finished"


@pytest.mark.parametrize(
    ("status", "mark", "reason"),
    [
        (DossierStatus.RESULT_READY, (1, 4), "dossier_result_ready"),
        (DossierStatus.REJECTED, (1, 4), "dossier_rejected"),
        (DossierStatus.WITHDRAWN, (1, 4), "dossier_withdrawn"),
        (DossierStatus.PAUSED, (1, 3), "clock_stopped"),
        (DossierStatus.AWAITING_SUPPLEMENT, (1, 3), "clock_stopped"),
        (DossierStatus.IN_PROGRESS, (2, 0), "deadline_moved"),
    ],
)
def test_an_alert_no_longer_true_of_the_dossier_is_dropped(
    status: DossierStatus, mark: tuple[int, int], reason: str
) -> None:
    card = replace(card_after_received(), status=status.value)
    people = [Contact("A", "+84901000001")]
    assert decide_alert(flagged(), card, mark, people, vn(10, 10), POLICY) == reason


def test_an_alert_is_not_told_before_its_due_time() -> None:
    people = [Contact("A", "+84901000001")]
    early = vn(9, 9)  # the notifier's clock behind the tracker's
    card = card_after_received()
    assert decide_alert(flagged(), card, (1, 2), people, early, POLICY) == "not_due_yet"


def test_postal_problem_alerts_supervisors_per_status() -> None:
    drafts = on_postal_problem(
        card_after_received(), "EB1VN", "returned", [Contact("A", "+84901000001")], POLICY
    )
    (draft,) = drafts
    assert draft.source_key == "postal:d-1:returned"
    assert "chuyen hoan" in GSM.render(draft.key, draft.values).text


def test_digest_one_message_per_person_and_nothing_on_a_quiet_day() -> None:
    people = [Contact("A", "+84901000001"), Contact("B", "+84901000002")]
    quiet = AgencyDigest("Q1", 0, 0)
    assert digest_notices(quiet, vn(2, 7).date(), people, POLICY) == ()
    codes = [f"Q1-260302-{n:04d}" for n in range(1, 10)]
    busy = AgencyDigest("Q1", 3, 9, codes)
    drafts = digest_notices(busy, vn(2, 7).date(), people, POLICY)
    assert len(drafts) == 2 and {d.source_key for d in drafts} == {"digest:Q1:2026-03-02"}
    text = GSM.render(drafts[0].key, drafts[0].values).text
    assert "3 ho so sap den han, 9 ho so qua han" in text
    named = digest_notices(busy, vn(2, 7).date(), people, POLICY, "UBND Quận 1")
    assert GSM.render(named[0].key, named[0].values).text.startswith("UBND Quan 1: UBND Quan 1 co")
    listed = text.split("Qua han lau nhat: ")[1].rstrip(".").split(", ")
    assert listed and all(code in codes for code in listed)  # whole codes only


def test_a_claimed_batch_is_sent_within_half_its_lease() -> None:
    from datetime import timedelta

    from services.notifier.dispatch import claim_size

    lease = timedelta(seconds=60)
    assert claim_size(0, lease) == 100  # no rate limit
    assert claim_size(20, lease) == 100  # 100 SMS in 5 s
    assert claim_size(1, lease) == 30  # 30 s at one a second
    assert claim_size(0.01, lease) == 1  # never less than one
