"""New ids are UUID version 7 whose time is the injected clock's (core.ids)."""

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from services.core.ids import time_ordered_id

NOW = datetime(2026, 12, 3, 10, 0, 0, 123_456, tzinfo=UTC)


def test_an_id_is_a_version_7_uuid_carrying_the_clocks_millisecond():
    text = time_ordered_id(NOW)
    parsed = uuid.UUID(text)
    assert text == str(parsed)  # canonical: lower case, hyphens in their places
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    millis = parsed.int >> 80
    assert datetime.fromtimestamp(millis / 1000, UTC) == NOW.replace(microsecond=123_000)


def test_the_same_instant_in_another_offset_gives_the_same_time_bits():
    hanoi = NOW.astimezone(timezone(timedelta(hours=7)))
    assert uuid.UUID(time_ordered_id(hanoi)).int >> 80 == uuid.UUID(time_ordered_id(NOW)).int >> 80


def test_ids_at_one_instant_differ_and_a_later_millisecond_sorts_after_them():
    same = {time_ordered_id(NOW) for _ in range(1000)}
    later = time_ordered_id(NOW + timedelta(milliseconds=1))
    assert len(same) == 1000
    assert all(later > earlier for earlier in same)


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        time_ordered_id(NOW.replace(tzinfo=None))
