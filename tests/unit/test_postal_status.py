"""The one rule for a parcel's status (core.domain.postal_status): forward only, and nothing
after delivered, failed or returned."""

from __future__ import annotations

import pytest

from services.core.domain.postal_status import FINAL, is_final, moves_forward

STATUSES = ("picked_up", "in_transit", "delivered", "failed", "returned")


@pytest.mark.parametrize("reported", STATUSES)
def test_any_status_is_the_first_known(reported: str) -> None:
    assert moves_forward(None, reported)


@pytest.mark.parametrize("known", sorted(FINAL))
@pytest.mark.parametrize("reported", STATUSES)
def test_nothing_moves_a_parcel_after_its_end(known: str, reported: str) -> None:
    assert not moves_forward(known, reported)


@pytest.mark.parametrize(
    ("known", "reported", "forward"),
    [
        ("picked_up", "picked_up", False),  # told twice
        ("picked_up", "in_transit", True),
        ("picked_up", "delivered", True),  # a step the operator did not report
        ("picked_up", "failed", True),
        ("picked_up", "returned", True),
        ("in_transit", "picked_up", False),  # late
        ("in_transit", "in_transit", False),
        ("in_transit", "delivered", True),
        ("in_transit", "failed", True),
        ("in_transit", "returned", True),
    ],
)
def test_before_its_end_a_parcel_only_moves_forward(
    known: str, reported: str, forward: bool
) -> None:
    assert moves_forward(known, reported) is forward


def test_the_ends_are_delivered_failed_and_returned() -> None:
    assert {s for s in STATUSES if is_final(s)} == {"delivered", "failed", "returned"}
    assert not is_final(None)


def test_an_unknown_status_is_refused_not_taken() -> None:
    with pytest.raises(ValueError, match="not a postal status"):
        moves_forward("in_transit", "lost")
