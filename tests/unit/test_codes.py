"""The codes a text shows and a reader types back: one place defines their longest lengths."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.domain.codes import (
    AGENCY_CODE_MAX_LENGTH,
    DOSSIER_CODE_MAX_LENGTH,
    SEQUENCE_MAX,
    CodeError,
    dossier_code,
    dossier_code_prefix,
    valid_agency_code,
)

DAY = date(2026, 11, 23)


def test_a_dossier_code_is_agency_day_and_sequence() -> None:
    assert dossier_code(dossier_code_prefix("VPDK-Q1", DAY), 1) == "VPDK-Q1-20261123-0001"
    assert dossier_code(dossier_code_prefix("VPDK-Q1", DAY), 12345) == "VPDK-Q1-20261123-12345"


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2999, 12, 31)), st.times())
def test_a_days_prefix_is_its_date_in_eight_digits_whatever_the_hour(day: date, at: time) -> None:
    assert dossier_code_prefix("UBND-P1", day) == f"UBND-P1-{day:%Y%m%d}"
    moment = datetime.combine(day, at)
    assert dossier_code_prefix("UBND-P1", moment) == f"UBND-P1-{day:%Y%m%d}"


def test_the_longest_dossier_code_follows_from_the_agency_codes_limit() -> None:
    longest = dossier_code(dossier_code_prefix("A" * AGENCY_CODE_MAX_LENGTH, DAY), SEQUENCE_MAX)
    assert len(longest) == DOSSIER_CODE_MAX_LENGTH


@pytest.mark.parametrize("sequence", [0, SEQUENCE_MAX + 1])
def test_no_sequence_past_its_bound(sequence: int) -> None:
    with pytest.raises(CodeError, match="sequence"):
        dossier_code(dossier_code_prefix("VPDK-Q1", DAY), sequence)


def test_an_agency_code_from_before_the_limit_makes_no_code_longer_than_the_budget() -> None:
    with pytest.raises(CodeError, match=f"at most {DOSSIER_CODE_MAX_LENGTH}"):
        dossier_code(dossier_code_prefix("A" * (AGENCY_CODE_MAX_LENGTH + 1), DAY), SEQUENCE_MAX)


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        ("VPDK-Q1", True),
        ("000.00.12.H29", True),
        ("A" * AGENCY_CODE_MAX_LENGTH, True),
        ("A" * (AGENCY_CODE_MAX_LENGTH + 1), False),
        ("", False),
        ("VPDK Q1", False),
    ],
)
def test_agency_codes(code: str, valid: bool) -> None:
    assert valid_agency_code(code) is valid
