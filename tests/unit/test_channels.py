"""Zalo first, the SMS when Zalo cannot (notifier.domain.channels): one notice, one effect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.domain.channels import (
    FALLBACK,
    LATE,
    SMS,
    ZALO,
    Effect,
    after_report,
    after_zalo_answer,
    report_overdue,
    zalo_setup,
)

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
WAIT = timedelta(minutes=10)
RECEIVED = {
    "received": {"template": "200607", "params": {"code": "ma_ho_so", "appointment": "hen"}}
}


def answer(outcome: str, *, taken: bool = False, retry_at: datetime | None = None) -> object:
    return after_zalo_answer(outcome, "esms 789: x", taken, NOW, WAIT, retry_at)


def test_a_zns_accepted_waits_for_its_report_on_zalo() -> None:
    move = after_zalo_answer("accepted", None, False, NOW, WAIT, None)
    assert (move.status, move.channel, move.history) == ("accepted", ZALO, "accepted")
    assert move.next_attempt_at == NOW + WAIT  # the bound, then the SMS
    assert not move.restart


@pytest.mark.parametrize("outcome", ["failed", "retry"])
def test_a_zns_refused_without_being_taken_sends_the_sms_now(outcome: str) -> None:
    move = after_zalo_answer(outcome, "esms 789: x", False, NOW, WAIT, NOW + WAIT)
    assert (move.status, move.channel, move.history) == ("pending", SMS, FALLBACK)
    assert move.next_attempt_at == NOW and move.restart
    assert move.detail == "zalo: esms 789: x"


def test_a_zns_that_may_have_gone_is_sent_again_not_followed_by_the_sms() -> None:
    later = NOW + timedelta(seconds=30)
    move = after_zalo_answer("retry", "timeout", True, NOW, WAIT, later)
    assert (move.status, move.channel, move.history) == ("pending", ZALO, "retry")
    assert move.next_attempt_at == later
    # Its retries spent without an answer: the SMS, as when no report comes.
    spent = after_zalo_answer("retry", "timeout", True, NOW, WAIT, None)
    assert (spent.status, spent.channel) == ("pending", SMS)


def test_a_zns_is_not_retried_past_the_report_bound() -> None:
    first = NOW - WAIT + timedelta(seconds=10)
    within = after_zalo_answer("retry", "t", True, NOW, WAIT, NOW + timedelta(seconds=5), first)
    assert (within.status, within.channel) == ("pending", ZALO)
    past = after_zalo_answer("retry", "t", True, NOW, WAIT, NOW + timedelta(seconds=30), first)
    assert (past.status, past.channel, past.history) == ("pending", SMS, FALLBACK)


def test_no_report_within_the_bound_sends_the_sms() -> None:
    move = report_overdue(NOW, WAIT)
    assert (move.status, move.channel, move.history) == ("pending", SMS, FALLBACK)
    assert move.detail == "zalo: no delivery report within 600 s"


def test_a_zns_delivered_is_the_notice_delivered_by_zalo() -> None:
    move = after_report("accepted", ZALO, ZALO, True, None, NOW)
    assert move.effect == Effect.APPLY
    assert (move.status, move.channel, move.history, move.detail) == (
        "delivered",
        ZALO,
        "delivered",
        ZALO,
    )


def test_a_zns_reported_failed_sends_the_sms() -> None:
    move = after_report("accepted", ZALO, ZALO, False, "esms: rejected (zalo -114)", NOW)
    assert move.effect == Effect.APPLY
    assert (move.status, move.channel, move.history) == ("pending", SMS, FALLBACK)
    assert move.detail == "esms: rejected (zalo -114)" and move.restart


@pytest.mark.parametrize("status", ["pending", "sending", "accepted", "delivered", "failed"])
@pytest.mark.parametrize("delivered", [True, False])
def test_a_zns_report_after_the_sms_was_chosen_is_recorded_and_nothing_else(
    status: str, delivered: bool
) -> None:
    move = after_report(status, SMS, ZALO, delivered, None, NOW)
    assert move.effect == Effect.RECORD
    assert (move.status, move.channel) == (status, SMS)  # the notice stays as it was
    assert move.history == LATE
    assert move.detail == ("zalo delivered" if delivered else "zalo failed")


@pytest.mark.parametrize("status", ["pending", "sending"])
def test_a_zns_report_before_its_answer_is_kept_for_it(status: str) -> None:
    assert after_report(status, ZALO, ZALO, True, None, NOW).effect == Effect.KEEP


@pytest.mark.parametrize("status", ["delivered", "failed", "skipped"])
def test_a_report_about_a_notice_done_with_changes_nothing(status: str) -> None:
    assert after_report(status, ZALO, ZALO, True, None, NOW).effect == Effect.IGNORE
    assert after_report(status, SMS, SMS, False, "x", NOW).effect == Effect.IGNORE


def test_an_sms_report_reads_as_before() -> None:
    failed = after_report("accepted", SMS, SMS, False, "esms: rejected", NOW)
    assert (failed.effect, failed.status, failed.detail) == (
        Effect.APPLY,
        "failed",
        "esms: rejected",
    )
    delivered = after_report("sending", SMS, SMS, True, None, NOW)
    assert (delivered.status, delivered.detail) == ("delivered", SMS)


def test_the_zns_carries_the_template_and_the_values_worded_as_in_the_sms() -> None:
    setup = zalo_setup("4097311281936189049", RECEIVED, WAIT)
    due = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    zns = setup.zns("received", {"code": "UBND-Q1-20261123-0001", "appointment": due, "x": 1})
    assert zns == {
        "template": "200607",
        "params": {"ma_ho_so": "UBND-Q1-20261123-0001", "hen": "15:00 27/11/2026"},
    }
    assert setup.zns("rejected", {"code": "X"}) is None  # no template: SMS only
    digest = zalo_setup("1", {"daily_digest": {"template": "9", "params": {"oldest": "ds"}}}, WAIT)
    assert digest.zns("daily_digest", {}) == {"template": "9", "params": {"ds": ""}}


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"recieved": {"template": "1"}}, "MOTCUA_ZALO_TEMPLATES['recieved']: unknown notice kind"),
        ({"received": {"params": {}}}, 'needs "template"'),
        ({"received": {"template": "1", "params": {"reason": "r"}}}, "no placeholder 'reason'"),
        ({"received": {"template": "1", "params": {"code": ""}}}, "for 'code' needs a name"),
        ({"received": {"template": "1", "params": ["code"]}}, '"params" must map'),
    ],
)
def test_a_template_setting_that_cannot_work_is_refused_naming_it(
    raw: dict[str, dict[str, object]], says: str
) -> None:
    with pytest.raises(ValueError, match=None) as refused:
        zalo_setup("1", raw, WAIT)
    assert says in str(refused.value)
