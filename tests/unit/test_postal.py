"""The postal return (bưu gửi) as the intake shows it: pure rules, no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from schemas.events import DossierStatus, PostalOrdered, PostalStatusChanged
from services.intake.domain.postal import Postal, follow, hands_over_result, return_time

ICT = timezone(timedelta(hours=7))
T0 = datetime(2026, 11, 17, 9, 0, tzinfo=ICT)
CODE = "EL123456789VN"


def ordered(code: str = CODE) -> PostalOrdered:
    return PostalOrdered(reference="UBND-Q1-20261116-0001", tracking_code=code, at=T0)


def reported(status: str, minutes: int = 0, code: str = CODE) -> PostalStatusChanged:
    return PostalStatusChanged(
        tracking_code=code,
        status=status,  # type: ignore[arg-type]
        at=T0 + timedelta(minutes=minutes),
    )


def test_an_order_shows_its_tracking_code_without_a_status() -> None:
    assert follow(None, ordered()) == Postal(CODE)


def test_a_redelivered_order_keeps_the_status() -> None:
    current = Postal(CODE, "in_transit", T0)
    assert follow(current, ordered()) == current


def test_a_new_order_starts_without_a_status() -> None:
    assert follow(Postal(CODE, "returned", T0), ordered("EL2")) == Postal("EL2")


def test_statuses_move_forward_in_time_only() -> None:
    postal = follow(Postal(CODE), reported("in_transit", 0))
    postal = follow(postal, reported("delivered", 30))
    assert postal == Postal(CODE, "delivered", T0 + timedelta(minutes=30))
    assert follow(postal, reported("in_transit", 10)) == postal  # late
    assert follow(postal, reported("delivered", 30)) == postal  # redelivered


def test_a_status_at_the_same_time_is_the_later_report() -> None:
    after = follow(Postal(CODE, "in_transit", T0), reported("delivered", 0))
    assert after == Postal(CODE, "delivered", T0)


@pytest.mark.parametrize("end", ["delivered", "failed", "returned"])
@pytest.mark.parametrize("later", ["picked_up", "in_transit", "delivered", "failed", "returned"])
def test_nothing_after_the_parcels_end_changes_it(end: str, later: str) -> None:
    current = Postal(CODE, end, T0)  # type: ignore[arg-type]
    assert follow(current, reported(later, 60)) == current


def test_a_status_behind_the_known_one_is_ignored_even_if_newer() -> None:
    current = Postal(CODE, "in_transit", T0)
    assert follow(current, reported("picked_up", 60)) == current


def test_a_status_of_an_earlier_order_is_ignored() -> None:
    current = Postal("EL2")
    assert follow(current, reported("failed", 60, CODE)) == current


def test_a_status_before_its_order_still_shows() -> None:
    assert follow(None, reported("picked_up")) == Postal(CODE, "picked_up", T0)


@pytest.mark.parametrize(
    ("status", "dossier", "hands_over"),
    [
        ("delivered", DossierStatus.RESULT_READY, True),
        ("delivered", DossierStatus.RETURNED, False),
        ("delivered", DossierStatus.IN_PROGRESS, False),
        ("failed", DossierStatus.RESULT_READY, False),
        ("returned", DossierStatus.RESULT_READY, False),
        ("in_transit", DossierStatus.RESULT_READY, False),
    ],
)
def test_only_a_delivery_of_a_ready_result_returns_the_dossier(
    status: str, dossier: DossierStatus, hands_over: bool
) -> None:
    parcel = Postal(CODE, "in_transit", T0)
    assert hands_over_result(parcel, reported(status, 30), dossier) is hands_over
    assert hands_over_result(parcel, ordered(), dossier) is False


@pytest.mark.parametrize("end", ["delivered", "failed", "returned"])
def test_a_delivery_told_after_the_parcels_end_returns_nothing(end: str) -> None:
    parcel = Postal(CODE, end, T0)  # type: ignore[arg-type]
    assert not hands_over_result(parcel, reported("delivered", 60), DossierStatus.RESULT_READY)


def test_the_return_is_recorded_at_the_delivery_kept_between_last_action_and_now() -> None:
    last, now = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    assert return_time(T0, last, now) == T0
    assert return_time(now + timedelta(minutes=2), last, now) == now  # operator's clock ahead
    assert return_time(last - timedelta(minutes=5), last, now) == last  # before "result ready"
