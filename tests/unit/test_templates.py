"""Notice templates: default texts, validation when loaded, rendering within the cap."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.domain.calendar import VN_TZ
from services.core.domain.codes import (
    DOSSIER_CODE_MAX_LENGTH,
    SEQUENCE_MAX,
    TRACKING_CODE_MAX_LENGTH,
    dossier_code,
    dossier_code_prefix,
)
from services.notifier.domain.sms_text import Encoding, SegmentCount, segments
from services.notifier.domain.templates import (
    CODE_PLACEHOLDERS,
    DEFAULT_MAX_SEGMENTS_GSM7,
    DEFAULT_MAX_SEGMENTS_UNICODE,
    DEFAULT_TEXTS,
    NOTICE_SPECS,
    PLACEHOLDER_LIMITS,
    NoticeKey,
    TemplateError,
    TemplateSet,
    Value,
    appointment_text,
    default_templates,
    fit_value,
    lateness_text,
    load_templates,
)

GSM_SET = default_templates()
UNICODE_SET = default_templates(unicode=True)
BOTH = pytest.mark.parametrize("templates", [GSM_SET, UNICODE_SET], ids=["gsm7", "unicode"])

REALISTIC: Mapping[str, Value] = {
    "office": "UBND Q1",
    "lookup": "dichvucong.gov.vn",
    "procedure": "Đăng ký khai sinh",
    "code": "000.00.22.H29-260115-0001",
    "appointment": datetime(2026, 1, 20, 14, 0, tzinfo=VN_TZ),
    "items": "Bản sao CCCD của người đi đăng ký; Giấy chứng sinh",
    "reason": "Người yêu cầu không thuộc thẩm quyền giải quyết của UBND phường",
    "place": "Bộ phận Một cửa UBND phường Bến Nghé, 86 Lê Thánh Tôn",
    "tracking": "EL123456789VN",
    "agency": "Phòng Tư pháp Quận 1",
    "late": lateness_text(1020),
    "due_soon": 12,
    "overdue": 3,
    "oldest": "000.00.22.H29-251201-0007, 000.00.22.H29-251203-0002",
    "postal_status": "bị chuyển hoàn",
    "rating": "https://motcua.ubndq1.gov.vn/danh-gia/000.00.22.H29-260115-0001/Xq3vB7Yk1_z-Ab9P",
}


def _worst_values(pad: str) -> dict[str, Value]:
    """Every placeholder well past its maximum, of characters that cost the most; the codes,
    which are never cut, at their longest."""
    return {
        name: "9" * limit if name in CODE_PLACEHOLDERS else pad * (limit + 7)
        for name, limit in PLACEHOLDER_LIMITS.items()
    }


def _with(key: NoticeKey, text: str) -> dict[str, str]:
    return {**DEFAULT_TEXTS, key: text}


# -- wording of values ----------------------------------------------------------------------


def test_appointment_text_is_vietnam_time() -> None:
    assert appointment_text(datetime(2026, 1, 20, 7, 0, tzinfo=UTC)) == "14:00 20/01/2026"
    assert appointment_text(datetime(2026, 1, 5, 8, 30, tzinfo=VN_TZ)) == "08:30 05/01/2026"


def test_appointment_text_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        appointment_text(datetime(2026, 1, 20, 14, 0))


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(0, "dưới 1 giờ"), (59, "dưới 1 giờ"), (60, "1 giờ"), (480, "1 ngày"), (1020, "2 ngày 1 giờ")],
)
def test_lateness_text_in_working_days_and_hours(minutes: int, text: str) -> None:
    assert lateness_text(minutes) == text


# -- default texts --------------------------------------------------------------------------


def test_every_notice_has_a_default_text_and_a_spec() -> None:
    assert set(DEFAULT_TEXTS) == set(NoticeKey) == set(NOTICE_SPECS)


def test_default_worst_cases_fit_the_default_caps() -> None:
    for key in NoticeKey:
        assert GSM_SET.worst_case(key).parts <= DEFAULT_MAX_SEGMENTS_GSM7 == 2
        assert UNICODE_SET.worst_case(key).parts <= DEFAULT_MAX_SEGMENTS_UNICODE


def test_received_renders_exactly_without_diacritics() -> None:
    sms = GSM_SET.render(NoticeKey.RECEIVED, REALISTIC)
    assert sms.text == (
        "UBND Q1: Ho so 000.00.22.H29-260115-0001 cua ong/ba da duoc tiep nhan. "
        "Hen tra ket qua: 14:00 20/01/2026. Tra cuu tai dichvucong.gov.vn"
    )
    assert sms.encoding is Encoding.GSM7
    assert sms.segments == SegmentCount(units=len(sms.text), parts=1)


def test_received_renders_with_diacritics_in_unicode_mode() -> None:
    sms = UNICODE_SET.render(NoticeKey.RECEIVED, REALISTIC)
    assert sms.text.startswith("UBND Q1: Hồ sơ 000.00.22.H29-260115-0001 của ông/bà")
    assert sms.encoding is Encoding.UCS2


@BOTH
@pytest.mark.parametrize("key", list(NoticeKey))
def test_every_default_renders_realistic_data_within_the_cap(
    templates: TemplateSet, key: NoticeKey
) -> None:
    sms = templates.render(key, REALISTIC)
    assert 1 <= sms.segments.parts <= templates.max_segments
    assert sms.segments == segments(sms.text, sms.encoding)
    if not templates.unicode:
        assert sms.text.isascii()
        assert "{" not in sms.text
    if key is not NoticeKey.DAILY_DIGEST:
        assert "000.00.22.H29-260115-0001" in sms.text


@BOTH
@pytest.mark.parametrize("key", list(NoticeKey))
@pytest.mark.parametrize("pad", ["€", "😀", "ệ", "[ ]", "a\n"])
def test_every_default_renders_worst_case_data_within_the_cap(
    templates: TemplateSet, key: NoticeKey, pad: str
) -> None:
    sms = templates.render(key, _worst_values(pad))
    assert sms.segments.parts <= templates.worst_case(key).parts <= templates.max_segments


def test_realistic_rejection_fits_two_plain_segments() -> None:
    sms = GSM_SET.render(NoticeKey.REJECTED, REALISTIC)
    assert "Ly do: Nguoi yeu cau khong thuoc tham quyen" in sms.text
    assert sms.segments.parts <= 2


# -- values ---------------------------------------------------------------------------------


def test_over_long_value_is_cut_to_its_maximum_with_an_ellipsis() -> None:
    items = "Bản sao CCCD; " * 20
    sms = GSM_SET.render(NoticeKey.SUPPLEMENT_REQUESTED, {**REALISTIC, "items": items})
    rendered = sms.text.split("can bo sung: ")[1].split(". De nghi")[0]
    assert len(rendered) == PLACEHOLDER_LIMITS["items"] == 120
    assert rendered.endswith("...")
    assert rendered.startswith("Ban sao CCCD; Ban sao CCCD;")


def test_fit_value_uses_a_one_character_ellipsis_in_unicode() -> None:
    assert fit_value("Nguyễn Thị Ánh", 8, unicode=True) == "Nguyễn…"
    assert fit_value("Nguyễn Thị Ánh", 8, unicode=False) == "Nguye..."
    assert fit_value("Nguyễn Thị Ánh", 14, unicode=True) == "Nguyễn Thị Ánh"


def test_values_are_folded_to_one_unit_characters_and_one_line() -> None:
    assert fit_value("[CCCD] {x} ~ 5€", 40, unicode=False) == "(CCCD) (x) - 5EUR"
    assert fit_value("Giấy tờ 📄\n\n  bản chính", 40, unicode=True) == "Giấy tờ ? bản chính"


def test_int_values_render_as_digits() -> None:
    sms = GSM_SET.render(NoticeKey.DAILY_DIGEST, REALISTIC)
    assert "Phong Tu phap Quan 1 co 12 ho so sap den han, 3 ho so qua han" in sms.text


def test_render_ignores_extra_values_and_refuses_missing_ones() -> None:
    assert GSM_SET.render(NoticeKey.RETURNED, {**REALISTIC, "unused": "x"}).segments.parts == 1
    values = {k: v for k, v in REALISTIC.items() if k != "code"}
    with pytest.raises(TemplateError, match=r"'returned': no value for placeholder \{code\}"):
        GSM_SET.render(NoticeKey.RETURNED, values)


def test_render_refuses_a_value_of_the_wrong_type() -> None:
    with pytest.raises(TemplateError, match=r"'daily_digest': value of \{overdue\}"):
        GSM_SET.render(NoticeKey.DAILY_DIGEST, {**REALISTIC, "overdue": 2.5})  # type: ignore[dict-item]


def test_render_refuses_an_unknown_template() -> None:
    with pytest.raises(TemplateError, match="'nope': unknown template"):
        GSM_SET.render("nope", REALISTIC)


# -- loading --------------------------------------------------------------------------------


def _load(mapping: Mapping[str, str], unicode: bool = False, cap: int = 2) -> TemplateSet:
    return load_templates(mapping, unicode=unicode, max_segments=cap)


def test_template_value_lists_its_placeholders_and_limits() -> None:
    template = GSM_SET.template(NoticeKey.RECEIVED)
    assert template.placeholders() == {"office", "code", "appointment", "lookup"}
    assert template.limits["code"] == DOSSIER_CODE_MAX_LENGTH
    assert "items" not in template.limits


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hồ sơ {code} {foo}", r"unknown placeholder \{foo\}; allowed: .*code"),
        ("Hồ sơ {code} cần bổ sung {items}", r"unknown placeholder \{items\}"),
        ("Hồ sơ {code", "malformed format string"),
        ("Hồ sơ {code}}", "malformed format string"),
        ("Hồ sơ {code} {}", r"placeholder \{\} must be a plain name"),
        ("Hồ sơ {code} {0}", r"placeholder \{0\} must be a plain name"),
        ("Hồ sơ {code.upper}", r"placeholder \{code.upper\} must be a plain name"),
        ("Hồ sơ {code[0]}", r"placeholder \{code\[0\]\} must be a plain name"),
        ("Hồ sơ {code:>40}", r"placeholder \{code\} must have no format spec or conversion"),
        ("Hồ sơ {code!r}", r"placeholder \{code\} must have no format spec or conversion"),
        ("Hồ sơ đã trả kết quả.", r"missing required placeholder\(s\) \{code\}"),
        ("  ", "empty text"),
        ("Hồ sơ {code} 😀", "characters not sendable as GSM-7: 😀"),
    ],
)
def test_loading_refuses_a_bad_text_naming_the_template(text: str, problem: str) -> None:
    with pytest.raises(TemplateError, match=f"^template 'returned': {problem}") as caught:
        _load(_with(NoticeKey.RETURNED, text))
    assert caught.value.key == "returned"


def test_escaped_braces_are_literal_and_counted_as_extension_characters() -> None:
    templates = _load(_with(NoticeKey.RETURNED, "{{{code}}}"))
    assert templates.worst_case(NoticeKey.RETURNED) == SegmentCount(
        units=DOSSIER_CODE_MAX_LENGTH + 4, parts=1
    )
    assert templates.render(NoticeKey.RETURNED, {"code": "H29-1"}).text == "{H29-1}"


def test_emoji_in_the_text_is_accepted_in_unicode_mode() -> None:
    templates = _load(_with(NoticeKey.RETURNED, "Hồ sơ {code} 😀"), unicode=True, cap=4)
    assert templates.worst_case(NoticeKey.RETURNED) == SegmentCount(
        units=6 + DOSSIER_CODE_MAX_LENGTH + 1 + 2, parts=1
    )


def test_loading_accepts_a_text_exactly_at_the_cap_and_refuses_one_more() -> None:
    # {code} at its maximum costs its length in septets; the rest makes 306 = 2 × 153.
    at_cap = "{code}" + "x" * (306 - DOSSIER_CODE_MAX_LENGTH)
    assert _load(_with(NoticeKey.RETURNED, at_cap)).worst_case(NoticeKey.RETURNED) == (
        SegmentCount(units=306, parts=2)
    )
    with pytest.raises(TemplateError, match="^template 'returned': can render to 3 segments"):
        _load(_with(NoticeKey.RETURNED, at_cap + "x"))


def test_over_cap_message_names_the_units_and_the_cap() -> None:
    long_text = "Hồ sơ {code} cần bổ sung: {items}. " + "Xin cảm ơn. " * 12
    with pytest.raises(TemplateError) as caught:
        _load(_with(NoticeKey.SUPPLEMENT_REQUESTED, long_text))
    assert caught.value.key == "supplement_requested"
    assert "septets" in caught.value.problem
    assert caught.value.problem.endswith("the cap is 2")


def test_unicode_cap_counts_code_units() -> None:
    # Fits two GSM-7 segments, but with diacritics kept it needs more than two UCS-2 ones.
    with pytest.raises(TemplateError, match="UTF-16 code units.*the cap is 2"):
        _load(DEFAULT_TEXTS, unicode=True, cap=2)


def test_loading_refuses_unknown_and_missing_templates() -> None:
    with pytest.raises(TemplateError, match="^template 'welcome': unknown template; known:"):
        _load({**DEFAULT_TEXTS, "welcome": "Xin chào"})
    partial = {k: v for k, v in DEFAULT_TEXTS.items() if k != NoticeKey.EXTENDED}
    with pytest.raises(TemplateError, match="^template 'extended': missing"):
        _load(partial)


@pytest.mark.parametrize("cap", [0, -1])
def test_loading_refuses_a_cap_below_one(cap: int) -> None:
    with pytest.raises(ValueError, match="max_segments must be >= 1"):
        _load(DEFAULT_TEXTS, cap=cap)


def test_every_limit_leaves_room_for_the_ellipsis() -> None:
    assert min(PLACEHOLDER_LIMITS.values()) > len("...")


# -- properties -----------------------------------------------------------------------------

# Characters that cost 2 units, expand under conversion or NFC, or are whitespace.
_NASTY = "€[]{}~|^\\\f😀ệĐ…₫\u0958\ufb2c ﬁ\n\t\u00a0\u200b"
VALUE_TEXT = st.one_of(
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200),
    st.text(alphabet=_NASTY, max_size=200),
)
# Codes are never cut: they come whole, at most their maximum (motcua makes or checks them).
CODE_TEXT = st.text(alphabet="ABCXYZ0123456789-._", min_size=1)
VALUES = st.fixed_dictionaries(
    {
        name: CODE_TEXT.map(lambda t, n=limit: t[:n]) if name in CODE_PLACEHOLDERS else VALUE_TEXT
        for name, limit in PLACEHOLDER_LIMITS.items()
    }
)


@BOTH
@given(key=st.sampled_from(list(NoticeKey)), values=VALUES)
def test_rendering_never_exceeds_the_cap(
    templates: TemplateSet, key: NoticeKey, values: dict[str, Value]
) -> None:
    sms = templates.render(key, values)
    assert sms.segments.parts <= templates.worst_case(key).parts <= templates.max_segments
    if not templates.unicode:
        assert sms.segments.units <= templates.worst_case(key).units


@given(text=VALUE_TEXT, limit=st.integers(4, 150), unicode=st.booleans())
def test_fit_value_respects_its_maximum_at_one_unit_per_character(
    text: str, limit: int, unicode: bool
) -> None:
    fitted = fit_value(text, limit, unicode)
    assert len(fitted) <= limit
    assert "\n" not in fitted
    encoding = Encoding.UCS2 if unicode else Encoding.GSM7
    assert segments(fitted, encoding).units == len(fitted)


# -- codes are never cut ------------------------------------------------------------------

# The longest dossier code there can be: an agency code at its maximum, the last sequence.
LONGEST_CODE = dossier_code(
    dossier_code_prefix("UBND-PHUONG-BENNGHE1", datetime(2026, 11, 23).date()), SEQUENCE_MAX
)
LONGEST_TRACKING = "EB" + "1" * (TRACKING_CODE_MAX_LENGTH - 4) + "VN"


def test_the_longest_codes_are_the_placeholders_budgets() -> None:
    assert len(LONGEST_CODE) == DOSSIER_CODE_MAX_LENGTH == PLACEHOLDER_LIMITS["code"]
    assert len(LONGEST_TRACKING) == TRACKING_CODE_MAX_LENGTH == PLACEHOLDER_LIMITS["tracking"]
    # The digest lists whole codes only: at least two of the longest fit.
    assert PLACEHOLDER_LIMITS["oldest"] >= 2 * DOSSIER_CODE_MAX_LENGTH + len(", ")


@BOTH
@pytest.mark.parametrize("key", list(NoticeKey))
def test_every_default_shows_the_longest_codes_whole(
    templates: TemplateSet, key: NoticeKey
) -> None:
    """Issue 13 item 11: 'Ho so UBND-PHUONG-BEN-NGHE-QUAN-1-2...' led nowhere."""
    values = {**REALISTIC, "code": LONGEST_CODE, "tracking": LONGEST_TRACKING}
    sms = templates.render(key, _worst_values("€") | values)
    placeholders = templates.template(key).placeholders()
    if "code" in placeholders:
        assert f" {LONGEST_CODE} " in sms.text
    if "tracking" in placeholders:
        assert f" {LONGEST_TRACKING}" in sms.text
    assert sms.segments.parts <= templates.max_segments


@pytest.mark.parametrize("name", sorted(CODE_PLACEHOLDERS))
def test_a_code_over_its_budget_fails_the_render_instead_of_being_cut(name: str) -> None:
    too_long = "9" * (PLACEHOLDER_LIMITS[name] + 1)
    key = next(k for k in NoticeKey if name in NOTICE_SPECS[k].required)
    with pytest.raises(TemplateError, match=rf"\{{{name}\}} is \d+ characters.*never cut"):
        GSM_SET.render(key, {**REALISTIC, name: too_long})


def test_a_custom_text_that_cannot_fit_the_longest_code_fails_at_load_naming_it() -> None:
    # Fits with a short code; with the longest dossier code it needs a third segment.
    text = "{code}" + "x" * (306 - DOSSIER_CODE_MAX_LENGTH + 1)
    with pytest.raises(TemplateError) as caught:
        _load(_with(NoticeKey.RETURNED, text))
    assert caught.value.key == "returned"
    assert (
        f"codes are never cut: {{code}} {DOSSIER_CODE_MAX_LENGTH} characters"
        in caught.value.problem
    )
    assert caught.value.problem.endswith("the cap is 2")
