"""Issue 14 item 3: the texts' `{lookup}` is the lookup page with the dossier's code filled in,
on MOTCUA_PUBLIC_URL, so the SMS points somewhere that knows the code; whole in every text
(never cut: a cut link leads nowhere), within the segment cap, or the notifier does not start.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from services.core.domain.calendar import VN_TZ
from services.core.domain.codes import (
    DOSSIER_CODE_MAX_LENGTH,
    SEQUENCE_MAX,
    dossier_code,
    dossier_code_prefix,
)
from services.core.runtime.settings import Settings
from services.notifier.app import templates_from
from services.notifier.domain.notices import NoticeKey
from services.notifier.domain.templates import TemplateError
from services.notifier.lookup_link import NATIONAL_PORTAL, LookupLink

PUBLIC = "https://motcua.ubndq1.gov.vn"
LONGEST_CODE = dossier_code(
    dossier_code_prefix("UBND-PHUONG-BENNGHE1", datetime(2026, 11, 23).date()), SEQUENCE_MAX
)
VALUES = {
    "office": "UBND-PHUONG-BENNGHE1",
    "procedure": "Đăng ký biến động đất đai",
    "code": LONGEST_CODE,
    "appointment": datetime(2026, 11, 30, 14, 0, tzinfo=VN_TZ),
}


def test_the_page_with_the_code_is_the_default_on_the_public_url() -> None:
    link = LookupLink.of(Settings(public_url=PUBLIC + "/"))
    assert link("UBND-Q1-20261116-0001") == f"{PUBLIC}/tra-cuu?code=UBND-Q1-20261116-0001"
    assert link(None) == f"{PUBLIC}/tra-cuu"  # a text about no one dossier: the bare page


def test_an_admins_address_wins_and_without_either_the_portal_is_left() -> None:
    fixed = LookupLink.of(Settings(public_url=PUBLIC, lookup_url="tracuu.ubndq1.gov.vn"))
    assert fixed("UBND-Q1-20261116-0001") == "tracuu.ubndq1.gov.vn"
    assert fixed.limits() == {"lookup": 40}
    # docker-compose hands an unset variable over as "": unset, not an empty link.
    neither = LookupLink.of(Settings(public_url="", lookup_url=" "))
    assert neither("UBND-Q1-20261116-0001") == NATIONAL_PORTAL
    assert neither.limits() == {"lookup": 40}


def test_the_page_link_counts_at_its_longest() -> None:
    link = LookupLink.of(Settings(public_url=PUBLIC))
    longest = len(PUBLIC) + len("/tra-cuu?code=") + DOSSIER_CODE_MAX_LENGTH
    assert link.limits() == {"lookup": longest}
    assert len(link(LONGEST_CODE)) == longest


@pytest.mark.parametrize("unicode", [False, True], ids=["gsm7", "unicode"])
def test_the_receipt_text_carries_the_whole_link_with_the_longest_code(unicode: bool) -> None:
    settings = Settings(public_url=PUBLIC, sms_unicode=unicode)
    templates = templates_from(settings)
    lookup = LookupLink.of(settings)(LONGEST_CODE)
    sms = templates.render(NoticeKey.RECEIVED, {**VALUES, "lookup": lookup})
    assert sms.text.endswith(f" {PUBLIC}/tra-cuu?code={LONGEST_CODE}")
    assert f" {LONGEST_CODE} " in sms.text
    assert sms.segments.parts <= templates.max_segments
    assert templates.worst_case(NoticeKey.RECEIVED).parts <= templates.max_segments


def test_a_public_url_too_long_for_the_receipt_text_stops_the_start_naming_it() -> None:
    # 4 UCS-2 segments hold 268 characters; the receipt text with everything at its longest
    # and this address does not fit them.
    long_url = "https://" + "a" * 80 + ".gov.vn"
    with pytest.raises(TemplateError) as caught:
        templates_from(Settings(public_url=long_url, sms_unicode=True))
    assert caught.value.key == "received"
    assert "the cap is 4" in caught.value.problem
    assert "MOTCUA_PUBLIC_URL" in caught.value.problem
    assert f"{len(long_url) + len('/tra-cuu?code=') + DOSSIER_CODE_MAX_LENGTH} characters" in (
        caught.value.problem
    )
