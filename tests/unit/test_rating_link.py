"""Issue 14 item 4: the rating page's link. Its MAC (an HMAC of the dossier's id under
MOTCUA_LINK_SECRET, which the intake checks without storing it), the "returned" text that
carries it whole within the segment cap, and no link where none can be made."""

from __future__ import annotations

import stat
import string
from datetime import datetime
from pathlib import Path

import pytest

from schemas.events import DossierReturned, DossierStatus
from services.cli import _kept_link_secret
from services.core.domain.calendar import VN_TZ
from services.core.domain.codes import DOSSIER_CODE_MAX_LENGTH
from services.core.runtime.settings import Settings
from services.intake.link_mac import MAC_LENGTH, link_mac, link_mac_matches
from services.notifier.app import composer_from, templates_from
from services.notifier.domain.decisions import (
    Contact,
    DossierCard,
    DossierRef,
    on_dossier_event,
)
from services.notifier.domain.notices import NoticeKey
from services.notifier.domain.templates import TemplateError
from services.notifier.rating_link import RatingLink

PUBLIC = "https://motcua.ubndq1.gov.vn"
SECRET = "a-long-random-secret-from-openssl"
DOSSIER_ID = "0b7c4a52-3f1e-4e0a-9f55-1d2c3b4a5e6f"
LONGEST_CODE = "UBND-PHUONG-BENNGHE1-20261123-999999"
URL_SAFE = set(string.ascii_letters + string.digits + "-_")


def test_the_mac_is_short_url_safe_and_the_same_in_every_process() -> None:
    mac = link_mac(SECRET, DOSSIER_ID)
    assert len(mac) == MAC_LENGTH == 16 and set(mac) <= URL_SAFE
    assert link_mac(SECRET, DOSSIER_ID) == mac  # no randomness, no clock: nothing to store
    assert link_mac(SECRET + "x", DOSSIER_ID) != mac  # another office's key
    assert link_mac(SECRET, DOSSIER_ID[:-1] + "0") != mac  # another dossier
    assert link_mac(SECRET, DOSSIER_ID, purpose="other") != mac  # another kind of link


def test_only_the_mac_made_for_the_dossier_matches() -> None:
    mac = link_mac(SECRET, DOSSIER_ID)
    assert link_mac_matches(SECRET, DOSSIER_ID, mac)
    assert not link_mac_matches(SECRET, DOSSIER_ID, mac[:-1])
    assert not link_mac_matches(SECRET, DOSSIER_ID, mac.swapcase())
    assert not link_mac_matches(SECRET, DOSSIER_ID, mac + "A")
    assert not link_mac_matches(SECRET, DOSSIER_ID, "é" * MAC_LENGTH)
    with pytest.raises(ValueError, match="secret"):
        link_mac("", DOSSIER_ID)


def test_the_link_counts_at_its_longest_and_needs_both_settings() -> None:
    link = RatingLink.of(Settings(public_url=PUBLIC + "/", link_secret=SECRET))  # type: ignore[arg-type]
    address = link(DOSSIER_ID, LONGEST_CODE)
    assert address == f"{PUBLIC}/danh-gia/{LONGEST_CODE}/{link_mac(SECRET, DOSSIER_ID)}"
    longest = len(PUBLIC) + len("/danh-gia/") + DOSSIER_CODE_MAX_LENGTH + 1 + MAC_LENGTH
    assert link.limits() == {"rating": longest} and len(address) == longest
    # docker-compose hands an unset variable over as "": no secret, no link.
    for unset in (Settings(public_url=PUBLIC, link_secret=""), Settings(link_secret=SECRET)):  # type: ignore[arg-type]
        off = RatingLink.of(unset)
        assert not off.is_on and off(DOSSIER_ID, LONGEST_CODE) is None and off.limits() == {}


def returned_notice(settings: Settings):  # type: ignore[no-untyped-def]
    composer = composer_from(settings)
    card = DossierCard(
        DOSSIER_ID, LONGEST_CODE, "UBND-PHUONG-BENNGHE1", "Đăng ký biến động đất đai",
        Contact("Nguyễn Văn An", "0912345678"), "counter", None, "result_ready",
    )  # fmt: skip
    ref = DossierRef(card.dossier_id, card.code, card.agency_code)
    at = datetime(2026, 11, 30, 14, 0, tzinfo=VN_TZ)
    payload = DossierReturned(at=at, status=DossierStatus.RETURNED, due_at=None)
    (notice,) = on_dossier_event(card, ref, "e-9", payload, at, composer.policy).notices
    return notice, composer.templates.render(notice.key, notice.values), composer.templates


@pytest.mark.parametrize("unicode", [False, True], ids=["gsm7", "unicode"])
def test_the_returned_text_carries_the_whole_link_within_the_cap(unicode: bool) -> None:
    settings = Settings(public_url=PUBLIC, link_secret=SECRET, sms_unicode=unicode)  # type: ignore[arg-type]
    notice, sms, templates = returned_notice(settings)
    assert notice.key is NoticeKey.RETURNED_RATING
    link = f"{PUBLIC}/danh-gia/{LONGEST_CODE}/{link_mac(SECRET, DOSSIER_ID)}"
    assert sms.text.endswith(f" {link}") and f" {LONGEST_CODE} " in sms.text
    assert sms.segments.parts <= templates.worst_case(NoticeKey.RETURNED_RATING).parts
    assert templates.worst_case(NoticeKey.RETURNED_RATING).parts <= templates.max_segments


def test_without_a_public_url_or_a_secret_the_text_says_thanks_only() -> None:
    for settings in (Settings(link_secret=SECRET), Settings(public_url=PUBLIC)):  # type: ignore[arg-type]
        notice, sms, _ = returned_notice(settings)
        assert notice.key is NoticeKey.RETURNED
        assert "danh-gia" not in sms.text and "Cam on ong/ba" in sms.text


def test_a_public_url_too_long_for_the_rating_text_stops_the_start_naming_it() -> None:
    # The receipt's link is shorter (no MAC): this address fits its text and not this one.
    long_url = "https://" + "a" * 60 + ".gov.vn"  # 75 characters
    with pytest.raises(TemplateError) as caught:
        templates_from(Settings(public_url=long_url, link_secret=SECRET, sms_unicode=True))  # type: ignore[arg-type]
    assert caught.value.key == "returned_rating"
    assert "MOTCUA_PUBLIC_URL" in caught.value.problem and "rating page" in caught.value.problem
    longest = len(long_url) + len("/danh-gia/") + DOSSIER_CODE_MAX_LENGTH + 1 + MAC_LENGTH
    assert f"{longest} characters" in caught.value.problem
    # Without the secret the text is never sent, so it stops nothing.
    assert templates_from(Settings(public_url=long_url, sms_unicode=True))


def test_motcua_up_keeps_a_secret_in_the_data_dir_unless_one_is_set(tmp_path: Path) -> None:
    kept = _kept_link_secret(Settings(data_dir=tmp_path))
    path = tmp_path / "link_secret"
    assert kept.link_key == path.read_text().strip() and len(kept.link_key) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A restart signs with the same key: the links already texted keep opening.
    assert _kept_link_secret(Settings(data_dir=tmp_path)).link_key == kept.link_key
    given = Settings(data_dir=tmp_path / "other", link_secret=SECRET)  # type: ignore[arg-type]
    assert _kept_link_secret(given) == given and not (tmp_path / "other").exists()
