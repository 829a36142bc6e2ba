"""SMS text: diacritics, GSM-7 conversion and exact segment counts."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notifier.domain.sms_text import (
    GSM7_BASIC,
    GSM7_CHARACTERS,
    GSM7_EXTENSION,
    Encoding,
    SegmentCount,
    char_cost,
    gsm7_unmappable,
    is_gsm7,
    package,
    prepare,
    segments,
    strip_diacritics,
    tidy_unicode,
    to_gsm7,
    to_gsm7_basic,
)

GSM7, UCS2 = Encoding.GSM7, Encoding.UCS2

# Every Vietnamese vowel with every tone, lower and upper case, and đ/Đ.
_TONES = "\u0300\u0301\u0309\u0303\u0323"  # huyền, sắc, hỏi, ngã, nặng
_VOWELS = "aăâeêioôơuưy"
VIETNAMESE_LETTERS = (
    "".join(
        unicodedata.normalize("NFC", vowel + tone)
        for vowel in _VOWELS + _VOWELS.upper()
        for tone in ("", *_TONES)
    )
    + "đĐ"
)


# -- tables ---------------------------------------------------------------------------------


def test_gsm_tables_have_the_3gpp_sizes_and_no_escape() -> None:
    assert len(GSM7_BASIC) == len(set(GSM7_BASIC)) == 127
    assert set(GSM7_EXTENSION) == set("\f^{}\\[~]|€")
    assert not set(GSM7_BASIC) & set(GSM7_EXTENSION)
    assert "\x1b" not in GSM7_CHARACTERS


def test_extension_characters_cost_two_septets_and_basic_one() -> None:
    assert {char_cost(c, GSM7) for c in GSM7_EXTENSION} == {2}
    assert {char_cost(c, GSM7) for c in GSM7_BASIC} == {1}


def test_ucs2_cost_is_utf16_code_units() -> None:
    assert char_cost("ệ", UCS2) == 1
    assert char_cost("😀", UCS2) == 2
    assert char_cost("€", UCS2) == 1


def test_gsm_cost_refuses_a_character_outside_the_alphabet() -> None:
    with pytest.raises(ValueError, match="U\\+1EC7"):
        char_cost("ệ", GSM7)


# -- diacritics -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phrase", "plain"),
    [
        ("Đăng ký khai sinh", "Dang ky khai sinh"),
        ("Nguyễn Thị Ánh", "Nguyen Thi Anh"),
        ("Hồ sơ của ông/bà đã được tiếp nhận", "Ho so cua ong/ba da duoc tiep nhan"),
        ("Trung tâm Phục vụ hành chính công Đà Nẵng", "Trung tam Phuc vu hanh chinh cong Da Nang"),
        ("Lý do: thiếu bản sao CCCD", "Ly do: thieu ban sao CCCD"),
    ],
)
def test_strip_diacritics_on_vietnamese_phrases(phrase: str, plain: str) -> None:
    assert strip_diacritics(phrase) == plain
    # Decomposed input (Unicode tổ hợp) gives the same result as precomposed (dựng sẵn).
    assert strip_diacritics(unicodedata.normalize("NFD", phrase)) == plain


def test_every_vietnamese_letter_becomes_its_ascii_base() -> None:
    stripped = strip_diacritics(VIETNAMESE_LETTERS)
    assert stripped.isascii()
    assert set(stripped) == set("aeiouyAEIOUYdD")


def test_strip_diacritics_leaves_other_scripts_and_symbols() -> None:
    assert strip_diacritics("Привет 日本 € 😀") == "Привет 日本 € 😀"
    # Thai tone marks are not Latin diacritics: left to to_gsm7.
    assert strip_diacritics("ก่") == "ก่"


# -- to GSM-7 -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("“Hồ sơ” ‘A’", "\"Ho so\" 'A'"),
        ("08:00 – 17:00 — nghỉ trưa", "08:00 - 17:00 - nghi trua"),
        ("Chờ…", "Cho..."),
        ("phí 50.000₫", "phi 50.000d"),
        ("a\u00a0b\u202fc\td", "a b c d"),
        ("zero\u200bwidth\ufeff", "zerowidth"),
        ("`code`", "'code'"),
        ("ﬁle ½ x²", "file 1/2 x2"),
        ("ÐÔNG", "DONG"),
        ("[mã] {x} € ~ | ^ \\", "[ma] {x} € ~ | ^ \\"),
        ("Xin chào 😀", "Xin chao ?"),
        ("ESC\x1b here", "ESC here"),
    ],
)
def test_to_gsm7_replaces_look_alikes(text: str, expected: str) -> None:
    assert to_gsm7(text) == expected


def test_to_gsm7_basic_folds_the_extension_table() -> None:
    assert to_gsm7_basic("[a]{b}~|\\^€\f") == "(a)(b)-//'EUR "


def test_gsm7_unmappable_names_what_would_become_a_question_mark() -> None:
    assert gsm7_unmappable("Hồ sơ “đã” nhận 😀 ?") == frozenset({"😀"})
    assert gsm7_unmappable(VIETNAMESE_LETTERS) == frozenset()


@given(st.text())
def test_to_gsm7_output_is_always_gsm_encodable_and_stable(text: str) -> None:
    converted = to_gsm7(text)
    assert is_gsm7(converted)
    assert to_gsm7(converted) == converted
    segments(converted, GSM7)  # would raise on a character outside the alphabet


@given(st.text())
def test_to_gsm7_basic_costs_one_septet_per_character(text: str) -> None:
    folded = to_gsm7_basic(text)
    assert segments(folded, GSM7).units == len(folded)


# -- segments: GSM-7 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "parts"),
    [(0, 0), (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)],
)
def test_gsm_boundaries(length: int, parts: int) -> None:
    assert segments("a" * length, GSM7) == SegmentCount(units=length, parts=parts)


def test_extension_character_at_the_single_segment_boundary() -> None:
    assert segments("a" * 158 + "€", GSM7) == SegmentCount(units=160, parts=1)
    assert segments("a" * 159 + "€", GSM7) == SegmentCount(units=161, parts=2)


def test_escape_pair_is_never_split_across_segments() -> None:
    # 306 septets would be 2 × 153, but "€" cannot straddle the boundary after 152 septets:
    # segment 1 = 152 septets, segment 2 = "€" + 151, and one "a" is left for segment 3.
    text = "a" * 152 + "€" + "a" * 152
    assert segments(text, GSM7) == SegmentCount(units=306, parts=3)
    # One septet earlier, the pair fits exactly at the end of segment 1.
    assert segments("a" * 151 + "€" + "a" * 153, GSM7) == SegmentCount(units=306, parts=2)


def test_gsm_segments_refuse_text_outside_the_alphabet() -> None:
    with pytest.raises(ValueError, match="not in the GSM-7 alphabet"):
        segments("Hồ sơ", GSM7)


# -- segments: UCS-2 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "parts"),
    [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_ucs2_boundaries(length: int, parts: int) -> None:
    assert segments("ệ" * length, UCS2) == SegmentCount(units=length, parts=parts)


def test_emoji_at_the_single_segment_boundary() -> None:
    assert segments("ệ" * 68 + "😀", UCS2) == SegmentCount(units=70, parts=1)
    assert segments("ệ" * 69 + "😀", UCS2) == SegmentCount(units=71, parts=2)


def test_surrogate_pair_is_never_split_across_segments() -> None:
    text = "ệ" * 66 + "😀" + "ệ" * 66
    assert segments(text, UCS2) == SegmentCount(units=134, parts=3)
    assert segments("ệ" * 65 + "😀" + "ệ" * 67, UCS2) == SegmentCount(units=134, parts=2)


# -- segments: properties -------------------------------------------------------------------

GSM_TEXT = st.text(alphabet=sorted(GSM7_CHARACTERS), max_size=700)
ANY_TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=400)


@given(GSM_TEXT, st.data())
def test_gsm_segments_are_monotonic_in_length(text: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(text)))
    shorter, longer = segments(text[:cut], GSM7), segments(text, GSM7)
    assert shorter.units <= longer.units
    assert shorter.parts <= longer.parts


@given(ANY_TEXT, st.data())
def test_ucs2_segments_are_monotonic_in_length(text: str, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(text)))
    shorter, longer = segments(text[:cut], UCS2), segments(text, UCS2)
    assert shorter.units <= longer.units
    assert shorter.parts <= longer.parts


@pytest.mark.parametrize(
    ("encoding", "single", "part", "texts"),
    [(GSM7, 160, 153, GSM_TEXT), (UCS2, 70, 67, ANY_TEXT)],
)
@given(data=st.data())
def test_parts_are_as_full_as_an_unsplit_packing_allows(
    encoding: Encoding, single: int, part: int, texts: st.SearchStrategy[str], data: st.DataObject
) -> None:
    count = segments(data.draw(texts), encoding)
    if count.parts <= 1:
        assert count.units <= single
        return
    assert count.units > single
    # Every segment but the last holds at least ``part - 1`` units (a 2-unit character may
    # leave one unit free), and the last holds at least one.
    assert (count.parts - 1) * (part - 1) < count.units <= count.parts * part


def packed_one_character_at_a_time(text: str, encoding: Encoding) -> SegmentCount:
    """The definition: each character's cost, segments filled in order, none split."""
    single, part = (160, 153) if encoding is GSM7 else (70, 67)
    costs = [char_cost(char, encoding) for char in text]
    if not costs:
        return SegmentCount(0, 0)
    if sum(costs) <= single:
        return SegmentCount(sum(costs), 1)
    parts, used = 1, 0
    for cost in costs:
        if used + cost > part:
            parts, used = parts + 1, 0
        used += cost
    return SegmentCount(sum(costs), parts)


BASIC_TEXT = st.text(alphabet=sorted(GSM7_BASIC), max_size=700)


@pytest.mark.parametrize(
    ("encoding", "texts"),
    [(GSM7, BASIC_TEXT), (GSM7, GSM_TEXT), (UCS2, BASIC_TEXT), (UCS2, ANY_TEXT)],
)
@given(data=st.data())
def test_segments_count_as_packing_one_character_at_a_time(
    encoding: Encoding, texts: st.SearchStrategy[str], data: st.DataObject
) -> None:
    # segments() takes a shortcut when every character costs one unit: it must agree.
    text = data.draw(texts)
    assert segments(text, encoding) == packed_one_character_at_a_time(text, encoding)


@pytest.mark.parametrize("length", [0, 1, 70, 71, 134, 135, 160, 161, 306, 307, 459, 460])
@pytest.mark.parametrize(
    ("encoding", "char"), [(GSM7, "a"), (GSM7, "€"), (UCS2, "ệ"), (UCS2, "😀")]
)
def test_segments_at_the_boundaries(encoding: Encoding, char: str, length: int) -> None:
    text = char * length
    assert segments(text, encoding) == packed_one_character_at_a_time(text, encoding)


@given(ANY_TEXT)
def test_strip_diacritics_drops_exactly_the_latin_marks(text: str) -> None:
    blocks = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF))
    blocks += ((0xFE20, 0xFE2F),)
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(c for c in decomposed if not any(lo <= ord(c) <= hi for lo, hi in blocks))
    expected = unicodedata.normalize("NFC", kept).replace("đ", "d").replace("Đ", "D")
    assert strip_diacritics(text) == expected


@given(GSM_TEXT)
def test_gsm7_is_never_more_segments_than_ucs2_for_the_same_text(text: str) -> None:
    # The ground for sending pure-GSM text as GSM-7 even in Unicode mode.
    assert segments(text, GSM7).parts <= segments(text, UCS2).parts


# -- prepare --------------------------------------------------------------------------------


def test_prepare_defaults_to_gsm7_without_diacritics() -> None:
    sms = prepare("Hồ sơ của ông/bà đã được tiếp nhận")
    assert sms.text == "Ho so cua ong/ba da duoc tiep nhan"
    assert sms.encoding is GSM7
    assert sms.segments == SegmentCount(units=34, parts=1)


def test_prepare_unicode_keeps_diacritics_and_counts_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "Hồ sơ của ông/bà đã được tiếp nhận")
    sms = prepare(decomposed, unicode=True)
    assert sms.text == "Hồ sơ của ông/bà đã được tiếp nhận"
    assert sms.encoding is UCS2
    assert sms.segments == SegmentCount(units=34, parts=1)


def test_prepare_unicode_sends_pure_gsm_text_as_gsm7() -> None:
    sms = prepare("Ho so {code} – “da nhan”", unicode=True)
    assert sms.text == 'Ho so {code} - "da nhan"'
    assert sms.encoding is GSM7
    assert sms.segments.units == 26  # two extension characters count twice


def test_tidy_unicode_replaces_only_typographic_look_alikes() -> None:
    assert tidy_unicode("“Hồ sơ”\u00a0–\u200b₫…") == '"Hồ sơ" -₫…'


def test_package_refuses_non_gsm_text_in_gsm_mode() -> None:
    with pytest.raises(ValueError, match="not GSM-7"):
        package("Hồ sơ", unicode=False)


@given(ANY_TEXT, st.booleans())
def test_prepare_counts_what_it_sends(text: str, unicode: bool) -> None:
    sms = prepare(text, unicode)
    assert sms.segments == segments(sms.text, sms.encoding)
    assert (sms.encoding is GSM7) == is_gsm7(sms.text)
    if not unicode:
        assert sms.encoding is GSM7
