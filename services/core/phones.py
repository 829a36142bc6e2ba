"""Vietnamese mobile numbers: legacy 11-digit prefixes mapped, then E.164 via phonenumbers."""

from __future__ import annotations

import re
from functools import cache

import phonenumbers

# The 2018 conversion (docs/domain.md, "SMS practice"): old prefix → new prefix, last 7 digits kept.
LEGACY_PREFIXES: dict[str, str] = {
    "0120": "070", "0121": "079", "0122": "077", "0126": "076", "0128": "078",
    "0123": "083", "0124": "084", "0125": "085", "0127": "081", "0129": "082",
    "0162": "032", "0163": "033", "0164": "034", "0165": "035", "0166": "036",
    "0167": "037", "0168": "038", "0169": "039",
    "0186": "056", "0188": "058",
    "0199": "059",
}  # fmt: skip
_SEPARATORS = re.compile(r"[\s.\-()]")


class InvalidPhone(ValueError):
    """Not a Vietnamese mobile number we can text."""


def modernise(raw: str) -> str:
    """Map an 11-digit pre-2018 number (national or +84 form) to its 10-digit successor."""
    digits = _SEPARATORS.sub("", raw)
    national = "0" + digits[3:] if digits.startswith("+84") else digits
    if national.startswith("84") and len(national) == 12:
        national = "0" + national[2:]
    if len(national) == 11 and national[:4] in LEGACY_PREFIXES:
        return LEGACY_PREFIXES[national[:4]] + national[4:]
    return national


def normalise_phone(raw: str) -> str:
    """E.164 form (+84xxxxxxxxx) of a Vietnamese mobile number, or InvalidPhone."""
    if not raw or len(raw) > 32:
        raise InvalidPhone("not a phone number")
    candidate = modernise(raw.strip())
    if _TEN_DIGITS.fullmatch(candidate):
        # The usual case, 0 and nine digits: whether such a number is a valid mobile depends
        # on its first four digits only (libphonenumber's patterns for Việt Nam), so the
        # parse is paid once per prefix, not once per dossier (a tenth of a POST's CPU).
        _check_prefix(candidate[:5])
        return "+84" + candidate[1:]
    return _parsed(candidate)


_TEN_DIGITS = re.compile(r"0[0-9]{9}")


@cache
def _check_prefix(prefix: str) -> None:
    # cache keeps results, not exceptions: a refused prefix is parsed again each time,
    # which only typing mistakes pay.
    _parsed(prefix + "0" * 5)


def _parsed(candidate: str) -> str:
    try:
        number = phonenumbers.parse(candidate, "VN")
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone("not a phone number") from exc
    if number.country_code != 84 or not phonenumbers.is_valid_number(number):
        raise InvalidPhone("not a valid Vietnamese number")
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhone("not a mobile number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str) -> str:
    """What may stay of a number once its owner's data is erased (docs/privacy.md): the
    country and network prefix and the last two digits, +84912345678 → +8491*****78, enough
    to tell two notices' recipients apart in an audit, too little to reach anyone."""
    keep_head, keep_tail = 5, 2
    if len(phone) <= keep_head + keep_tail:
        return "*" * len(phone)
    return phone[:keep_head] + "*" * (len(phone) - keep_head - keep_tail) + phone[-keep_tail:]
