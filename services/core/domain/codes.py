"""Codes a citizen or a supervisor reads in a text and types back: the agency code, the dossier
code (mã hồ sơ) and the postal tracking code (mã bưu gửi), with their longest lengths.

One place defines both the agency code's rule and the dossier code's format, so the longest
dossier code follows from them (``DOSSIER_CODE_MAX_LENGTH``). The notifier budgets ``{code}``
and ``{tracking}`` with these lengths and checks at start that every template fits its segment
cap with them; a code is never cut in a text, since a cut code is one nobody can look up.
"""

from __future__ import annotations

import re
from datetime import date

# Mã cơ quan. 20 characters: the national agency identifier (mã định danh điện tử, Decision
# 20/2020/QĐ-TTg, e.g. "000.00.12.H29") is 13, and every character here is one more in each
# text a citizen gets. At 32, a dossier code could be 48 characters and three default texts no
# longer fit 4 Unicode segments.
AGENCY_CODE_MAX_LENGTH = 20
AGENCY_CODE_CHARACTERS = r"[A-Za-z0-9_.\-]"
AGENCY_CODE_PATTERN = rf"^{AGENCY_CODE_CHARACTERS}+$"

# The sequence of an agency's day: padded to 4 digits, it may grow to 6 (999,999 dossiers of
# one agency in one day, far past any office; the intake refuses the next one rather than
# hand out a code longer than the texts are budgeted for).
SEQUENCE_PADDING = 4
SEQUENCE_MAX = 999_999

# agency "-" yyyymmdd "-" sequence
DOSSIER_CODE_MAX_LENGTH = AGENCY_CODE_MAX_LENGTH + 1 + 8 + 1 + len(str(SEQUENCE_MAX))

# Mã bưu gửi, given by the postal operator. 40: the width of every column that keeps it (so a
# longer one could never have been stored), and twice the 13 characters of a UPU S10 code
# ("EB123456789VN"). The operator's answer is checked against it; the embedded operator's
# codes are 20.
TRACKING_CODE_MAX_LENGTH = 40

_AGENCY_CODE = re.compile(AGENCY_CODE_PATTERN)


class CodeError(ValueError):
    """A code that would not fit what the texts are budgeted for."""


def valid_agency_code(code: str) -> bool:
    return len(code) <= AGENCY_CODE_MAX_LENGTH and _AGENCY_CODE.fullmatch(code) is not None


def dossier_code_prefix(agency_code: str, day: date) -> str:
    """The part a day's codes of one agency share (the counter's key): ``VPDK-Q1-20261123``."""
    # Not `{day:%Y%m%d}`: strftime took 3.5 us against 0.6, twice a receipt, about 2 % of the
    # intake's samples on PostgreSQL (bench/README.md, its hottest frames). `date.isoformat`
    # is YYYY-MM-DD, a datetime's too when called so.
    return f"{agency_code}-{date.isoformat(day).replace('-', '')}"


def dossier_code(prefix: str, sequence: int) -> str:
    """Mã hồ sơ: ``VPDK-Q1-20261123-0001``; CodeError past ``SEQUENCE_MAX`` or when the code
    would be longer than ``DOSSIER_CODE_MAX_LENGTH`` (an agency code from before the limit)."""
    if not 1 <= sequence <= SEQUENCE_MAX:
        raise CodeError(f"sequence {sequence} is outside 1..{SEQUENCE_MAX}")
    code = f"{prefix}-{sequence:0{SEQUENCE_PADDING}d}"
    if len(code) > DOSSIER_CODE_MAX_LENGTH:
        raise CodeError(
            f"dossier code of {len(code)} characters; at most {DOSSIER_CODE_MAX_LENGTH}"
        )
    return code
