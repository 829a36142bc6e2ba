"""SMS text (nội dung tin nhắn): diacritics, the GSM-7 alphabet and segment counting.

Two ways to send Vietnamese:

- without diacritics (không dấu), GSM-7: 160 septets in one SMS, 153 per segment when
  concatenated. The default: gateways price and sometimes refuse Unicode.
- with diacritics (có dấu), UCS-2: 70 UTF-16 code units in one SMS, 67 per segment.

A concatenated segment loses 6 bytes of its 140 to the header that numbers the parts, hence
153 septets (134 bytes × 8 / 7) and 67 code units (134 bytes / 2). A character is never split
across two segments: neither a GSM escape pair (extension characters cost 2 septets) nor a
UTF-16 surrogate pair (characters outside the BMP cost 2 code units). ``segments`` packs
characters into segments in order, exactly as a gateway does, so its count is exact.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType

# -- GSM 03.38 (3GPP TS 23.038) ------------------------------------------------------------

# The basic table in code order, 16 per row. 0x1B (escape) is left out: it is the prefix of
# an extension character, never a character of its own.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# The extension table: each is sent as escape + code, so it costs 2 septets.
GSM7_EXTENSION = "\f^{}\\[~]|€"

_BASIC = frozenset(GSM7_BASIC)
_EXTENSION = frozenset(GSM7_EXTENSION)
GSM7_CHARACTERS = _BASIC | _EXTENSION

GSM7_SINGLE = 160
GSM7_PART = 153
UCS2_SINGLE = 70
UCS2_PART = 67


class Encoding(StrEnum):
    """Bảng mã: GSM-7 for text without diacritics, UCS-2 for text with them."""

    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class SegmentCount:
    """How much of the SMS budget a text uses.

    ``units``: septets (GSM-7) or UTF-16 code units (UCS-2). ``parts``: number of SMS
    segments (tin nhắn) billed; 0 for the empty text, which is never sent.
    """

    units: int
    parts: int


@dataclass(frozen=True)
class PreparedSms:
    """A text ready for the gateway: its final characters, encoding and segment count."""

    text: str
    encoding: Encoding
    segments: SegmentCount


# -- diacritics -----------------------------------------------------------------------------

# Only marks of the Latin diacritic blocks are dropped: they carry the Vietnamese tones and
# vowel marks. Marks of other scripts (Thai, Devanagari…) are left to the caller.
_DIACRITIC_BLOCKS = (
    (0x0300, 0x036F),  # Combining Diacritical Marks
    (0x1AB0, 0x1AFF),  # … Extended
    (0x1DC0, 0x1DFF),  # … Supplement
    (0x20D0, 0x20FF),  # … for Symbols
    (0xFE20, 0xFE2F),  # Combining Half Marks
)

# Every mark of those blocks, deleted by str.translate: one pass in C instead of a test in
# Python per character (every notice's values go through here).
_DROP_DIACRITICS: dict[int, None] = {
    code: None for low, high in _DIACRITIC_BLOCKS for code in range(low, high + 1)
}

# đ / Đ are letters of their own, not d + mark: NFD leaves them alone.
_D_WITH_STROKE = str.maketrans({"đ": "d", "Đ": "D"})


def _is_diacritic(char: str) -> bool:
    return ord(char) in _DROP_DIACRITICS


def strip_diacritics(text: str) -> str:
    """Bỏ dấu: "Đăng ký khai sinh" → "Dang ky khai sinh"; other characters are left.

    NFD first, so precomposed (dựng sẵn) and decomposed (tổ hợp) input give the same result.
    """
    kept = unicodedata.normalize("NFD", text).translate(_DROP_DIACRITICS)
    return unicodedata.normalize("NFC", kept).translate(_D_WITH_STROKE)


# -- to GSM-7 -------------------------------------------------------------------------------

# Same-width typographic look-alikes: replacing them never changes what a reader understands,
# and one curly quote must not push a whole message into UCS-2 (70 instead of 160).
_TYPOGRAPHIC: dict[str, str] = {
    **dict.fromkeys("‘’‚‛′`´‹›", "'"),
    **dict.fromkeys("“”„‟″«»", '"'),
    **dict.fromkeys("‐‑‒–—―−⁃", "-"),
    **dict.fromkeys("\u00a0\u2007\u202f\u2009\u200a\u2002\u2003\u3000\t", " "),
    **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e", ""),
    "\u2028": "\n",
    "\u2029": "\n",
}

_TYPOGRAPHIC_TABLE = str.maketrans(_TYPOGRAPHIC)

_REPLACEMENTS = MappingProxyType(
    {
        **_TYPOGRAPHIC,
        "…": "...",
        **dict.fromkeys("•‣◦·", "-"),
        "⁄": "/",
        "₫": "d",  # đồng sign: "50.000₫" → "50.000d", as Vietnamese write it without marks
        "Ð": "D",  # eth, often typed for Đ
        "ð": "d",
        "Ł": "L",
        "ł": "l",
        "ı": "i",
        "Œ": "OE",
        "œ": "oe",
        "×": "x",
        "÷": "/",
        "≤": "<=",
        "≥": ">=",
        "©": "(c)",
        "®": "(R)",
    }
)

# Folds the extension table onto one-septet look-alikes, for text whose cost must be bounded
# by its length (template values).
_EXTENSION_TO_BASIC = str.maketrans(
    {
        **dict.fromkeys("{[", "("),
        **dict.fromkeys("}]", ")"),
        **dict.fromkeys("\\|", "/"),
        "~": "-",
        "^": "'",
        "\f": " ",
        "€": "EUR",
    }
)

UNMAPPABLE = "?"


def _known(char: str) -> str | None:
    if char in GSM7_CHARACTERS:
        return char
    return _REPLACEMENTS.get(char)


def _compatibility(char: str) -> str | None:
    """NFKD look-alike, if it is entirely GSM: "ﬁ" → "fi", "²" → "2", "½" → "1/2"."""
    decomposed = unicodedata.normalize("NFKD", char)
    if decomposed == char:
        return None
    out: list[str] = []
    for part in decomposed:
        if unicodedata.combining(part):
            continue
        known = _known(part)
        if known is None:
            return None
        out.append(known)
    return "".join(out) or None


@lru_cache(maxsize=4096)
def _gsm_char(char: str) -> str:
    known = _known(char)
    if known is not None:
        return known
    category = unicodedata.category(char)
    if category == "Zs":
        return " "
    if category in ("Zl", "Zp"):
        return "\n"
    # Invisible controls and marks left over from other scripts: their base character is
    # already replaced, so a "?" per mark would only add noise.
    if category in ("Cc", "Cf", "Mn", "Me"):
        return ""
    return _compatibility(char) or UNMAPPABLE


def to_gsm7(text: str) -> str:
    """Text sendable as GSM-7: diacritics stripped, look-alikes replaced, the rest "?".

    Idempotent: ``to_gsm7(to_gsm7(t)) == to_gsm7(t)``.
    """
    stripped = strip_diacritics(text)
    if GSM7_CHARACTERS.issuperset(stripped):  # the usual case: _gsm_char keeps every one
        return stripped
    return "".join(_gsm_char(char) for char in stripped)


def to_gsm7_basic(text: str) -> str:
    """``to_gsm7`` with extension characters folded too ("[" → "(", "€" → "EUR"…).

    Every character of the result costs one septet, so its cost is its length.
    """
    return to_gsm7(text).translate(_EXTENSION_TO_BASIC)


def gsm7_unmappable(text: str) -> frozenset[str]:
    """The characters ``to_gsm7`` can only turn into "?" (emoji, CJK, Cyrillic…)."""
    stripped = strip_diacritics(text)
    return frozenset(c for c in stripped if c != UNMAPPABLE and _gsm_char(c) == UNMAPPABLE)


def is_gsm7(text: str) -> bool:
    return GSM7_CHARACTERS.issuperset(text)


def tidy_unicode(text: str) -> str:
    """Text for the Unicode path: NFC (one code unit per Vietnamese letter instead of up to
    three when decomposed) and typographic look-alikes replaced; diacritics kept."""
    return unicodedata.normalize("NFC", text).translate(_TYPOGRAPHIC_TABLE)


# -- segments -------------------------------------------------------------------------------


def char_cost(char: str, encoding: Encoding) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) one character takes."""
    if encoding is Encoding.UCS2:
        return 2 if ord(char) > 0xFFFF else 1
    if char in _BASIC:
        return 1
    if char in _EXTENSION:
        return 2
    raise ValueError(f"{char!r} (U+{ord(char):04X}) is not in the GSM-7 alphabet")


def _limits(encoding: Encoding) -> tuple[int, int]:
    if encoding is Encoding.GSM7:
        return GSM7_SINGLE, GSM7_PART
    return UCS2_SINGLE, UCS2_PART


def _pack(costs: Iterable[int], capacity: int) -> int:
    """Segments needed when characters fill them in order and none is split."""
    parts, used = 1, 0
    for cost in costs:
        if used + cost > capacity:
            parts, used = parts + 1, 0
        used += cost
    return parts


def _one_unit_each(text: str, encoding: Encoding) -> bool:
    """Every character costs one unit (no extension character, nothing outside the BMP)."""
    if encoding is Encoding.GSM7:
        return _BASIC.issuperset(text)
    return not text or max(text) <= "\uffff"


def segments(text: str, encoding: Encoding) -> SegmentCount:
    """Exact segment count of ``text`` in ``encoding``; ValueError if GSM-7 cannot hold it."""
    single, part = _limits(encoding)
    if _one_unit_each(text, encoding):
        # Characters of one unit pack segments full, so the count is a division (the usual
        # case, computed without a Python step per character).
        units = len(text)
        if units <= single:
            return SegmentCount(units=units, parts=1 if units else 0)
        return SegmentCount(units=units, parts=-(-units // part))
    costs = [char_cost(char, encoding) for char in text]
    units = sum(costs)
    if units == 0:
        return SegmentCount(units=0, parts=0)
    if units <= single:
        return SegmentCount(units=units, parts=1)
    return SegmentCount(units=units, parts=_pack(costs, part))


# -- prepare --------------------------------------------------------------------------------


def package(text: str, unicode: bool) -> PreparedSms:
    """Choose the encoding and count, without changing a character.

    GSM-7 whenever the text is entirely GSM, even with ``unicode=True``: the handset shows
    the same characters, and it is never more segments (a GSM segment holds at least 76
    characters even if all are extension characters, a UCS-2 segment 67) and never dearer.
    ValueError if ``unicode`` is False and the text is not GSM (use ``to_gsm7`` first).
    """
    if is_gsm7(text):
        encoding = Encoding.GSM7
    elif unicode:
        encoding = Encoding.UCS2
    else:
        raise ValueError("text is not GSM-7; convert it with to_gsm7 or send it as Unicode")
    return PreparedSms(text=text, encoding=encoding, segments=segments(text, encoding))


def prepare(text: str, unicode: bool = False) -> PreparedSms:
    """Text → what is sent. ``unicode=False``: ``to_gsm7``, GSM-7 (the default, không dấu).
    ``unicode=True``: ``tidy_unicode``, diacritics kept (có dấu), UCS-2 unless the text
    happens to be pure GSM (see ``package``)."""
    converted = tidy_unicode(text) if unicode else to_gsm7(text)
    return package(converted, unicode)
