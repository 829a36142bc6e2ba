"""Quiet hours and the retry policy: pure rules, checked at their edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.core.domain.calendar import VN_TZ
from services.notifier.domain.quiet_hours import QuietHours
from services.notifier.domain.retry import RetryPolicy


def vn(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=VN_TZ)


NIGHT = QuietHours.parse("21:00-07:00")


@pytest.mark.parametrize(
    ("at", "inside"),
    [
        (vn(20, 20, 59), False),
        (vn(20, 21, 0), True),
        (vn(20, 23, 59), True),
        (vn(21, 0, 0), True),
        (vn(21, 6, 59), True),
        (vn(21, 7, 0), False),
        (vn(21, 12, 0), False),
    ],
)
def test_overnight_window_edges(at: datetime, inside: bool) -> None:
    assert NIGHT is not None
    assert NIGHT.contains(at) is inside


def test_release_is_the_end_of_the_window_holding_the_time() -> None:
    assert NIGHT is not None
    assert NIGHT.release_at(vn(20, 22, 30)) == vn(21, 7, 0)
    assert NIGHT.release_at(vn(21, 3, 0)) == vn(21, 7, 0)
    assert NIGHT.release_at(vn(21, 9, 0)) == vn(21, 9, 0)


def test_release_is_read_in_vietnam_time_whatever_the_input_zone() -> None:
    assert NIGHT is not None
    assert NIGHT.release_at(vn(20, 22, 0).astimezone(UTC)) == vn(21, 7, 0)
    assert NIGHT.contains(datetime(2026, 11, 20, 15, 0, tzinfo=UTC))  # 22:00 in Hà Nội


def test_daytime_window_and_empty_settings() -> None:
    lunch = QuietHours.parse("12:00-13:00")
    assert lunch is not None
    assert lunch.contains(vn(20, 12, 30)) and not lunch.contains(vn(20, 13, 0))
    assert QuietHours.parse("") is None
    assert QuietHours.parse("07:00-07:00") is None


@pytest.mark.parametrize("text", ["21-07", "21:00", "25:00-07:00", "aa:bb-cc:dd"])
def test_malformed_windows_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        QuietHours.parse(text)


def test_backoff_doubles_with_jitter_in_the_upper_half_and_is_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(seconds=60))
    assert policy.delay(1, 0.0) == timedelta(seconds=2.5)
    assert policy.delay(1, 1.0) == timedelta(seconds=5)
    assert policy.delay(3, 1.0) == timedelta(seconds=20)
    assert policy.delay(20, 1.0) == timedelta(seconds=60)
    assert policy.delay(20, 0.0) == timedelta(seconds=30)


def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(base=timedelta(seconds=5), cap=timedelta(seconds=60))
    assert policy.delay(1, 0.0, retry_after=30) == timedelta(seconds=30)
    assert policy.delay(1, 0.0, retry_after=3600) == timedelta(seconds=60)


def test_the_horizon_ends_the_retries() -> None:
    policy = RetryPolicy(
        base=timedelta(seconds=5), cap=timedelta(minutes=10), horizon=timedelta(hours=1)
    )
    first = vn(20, 9)
    assert policy.next_attempt(2, first, first + timedelta(minutes=30), 0.5) is not None
    assert policy.next_attempt(9, first, first + timedelta(minutes=59), 0.5) is None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().delay(0, 0.5)
    with pytest.raises(ValueError):
        RetryPolicy().delay(1, 1.5)
