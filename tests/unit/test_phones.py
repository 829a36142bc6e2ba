"""core.phones: the prefix shortcut gives exactly what libphonenumber gives."""

from __future__ import annotations

import random

import pytest

from services.core.phones import InvalidPhone, _parsed, normalise_phone


def _verdict(f, number: str) -> str:
    try:
        return f(number)
    except InvalidPhone as exc:
        return f"refused: {exc}"


def test_every_ten_digit_prefix_is_judged_as_libphonenumber_judges_the_whole_number() -> None:
    rng = random.Random(84)
    for head in range(10_000):
        for tail in ("00000", "99999", f"{rng.randrange(100_000):05d}"):
            number = f"0{head:04d}{tail}"
            assert _verdict(normalise_phone, number) == _verdict(_parsed, number), number


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("0912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("0168 123 4567", "+84381234567"),  # a pre-2018 number, mapped
        ("84912345678", "+84912345678"),
    ],
)
def test_common_spellings_become_e164(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize("raw", ["0241234567", "0012345678", "091234567", "abc", ""])
def test_what_is_not_a_vietnamese_mobile_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_phone(raw)
