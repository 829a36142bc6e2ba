"""Notice templates (mẫu tin nhắn): the texts, their validation when loaded, their rendering.

A template is ``string.Formatter`` text with plain ``{placeholder}`` fields. Each placeholder
has a maximum rendered length in characters (``PLACEHOLDER_LIMITS``); each notice
(``NoticeKey``) says which placeholders it may and must use (``NOTICE_SPECS``). The notices
and their default texts are in ``notices``, re-exported here.

The segment cap is checked once, when templates are loaded, on the worst case: every
placeholder at its maximum length of the costliest character a value can hold. Rendering
keeps values inside that worst case, so a real message can never exceed the cap:

- a value is folded to one-unit characters: GSM-7 extension characters become basic
  look-alikes ("[" → "(", which costs 1 septet instead of 2), characters outside the BMP
  become "?" (1 UTF-16 code unit instead of 2). Citizen data needs neither, and this halves
  the worst case, which is what lets a 120-character list of missing items fit 2 segments;
- whitespace runs collapse to one space (a value never adds lines to an SMS);
- a value over its maximum is cut, ending with an ellipsis; but a code (``CODE_PLACEHOLDERS``:
  the dossier code, the tracking code) is never cut, since a cut code leads nowhere. Its
  maximum is the longest code there can be, so a longer one is a bug upstream and the render
  fails (TemplateError) instead of sending a code nobody can look up.

The literal text of a template keeps whatever it has and is counted exactly.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from services.notifier.domain.notices import (
    CODE_PLACEHOLDERS,
    COMMON_PLACEHOLDERS,
    DEFAULT_MAX_SEGMENTS_GSM7,
    DEFAULT_MAX_SEGMENTS_UNICODE,
    DEFAULT_TEXTS,
    NOTICE_SPECS,
    PLACEHOLDER_LIMITS,
    NoticeKey,
    NoticeSpec,
    appointment_text,
    lateness_text,
)
from services.notifier.domain.sms_text import (
    Encoding,
    PreparedSms,
    SegmentCount,
    gsm7_unmappable,
    package,
    segments,
    tidy_unicode,
    to_gsm7,
    to_gsm7_basic,
)

__all__ = [
    "CODE_PLACEHOLDERS",
    "COMMON_PLACEHOLDERS",
    "DEFAULT_MAX_SEGMENTS_GSM7",
    "DEFAULT_MAX_SEGMENTS_UNICODE",
    "DEFAULT_TEXTS",
    "NOTICE_SPECS",
    "PLACEHOLDER_LIMITS",
    "NoticeKey",
    "NoticeSpec",
    "Piece",
    "Slot",
    "Template",
    "TemplateError",
    "TemplateSet",
    "Value",
    "appointment_text",
    "default_cap",
    "default_templates",
    "value_text",
    "fit_value",
    "lateness_text",
    "load_templates",
]

# A datetime renders as appointment_text; an int as its digits.
Value = str | int | datetime


class TemplateError(ValueError):
    """A template refused when loaded, or a render without a value it needs."""

    def __init__(self, key: str, problem: str) -> None:
        self.key = str(key)  # a NoticeKey is shown by its value
        self.problem = problem
        super().__init__(f"template {self.key!r}: {problem}")


# -- the template value ---------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """A ``{placeholder}`` in a template, with its maximum rendered length."""

    name: str
    max_length: int

    @property
    def whole(self) -> bool:
        """A code: shown whole or not rendered at all, never cut."""
        return self.name in CODE_PLACEHOLDERS


Piece = str | Slot


@dataclass(frozen=True)
class Template:
    """Mẫu tin nhắn: one notice's text and the placeholders it may use, each with its
    maximum rendered length in characters."""

    key: str
    text: str
    limits: Mapping[str, int]

    def pieces(self) -> tuple[Piece, ...]:
        """Literal text and slots in order; TemplateError for a bad format string."""
        return tuple(_parse(self))

    def placeholders(self) -> frozenset[str]:
        return frozenset(p.name for p in self.pieces() if isinstance(p, Slot))


def _parse(template: Template) -> Iterable[Piece]:
    try:
        fields = list(string.Formatter().parse(template.text))
    except ValueError as exc:
        raise TemplateError(template.key, f"malformed format string: {exc}") from None
    for literal, name, spec, conversion in fields:
        if literal:
            yield literal
        if name is not None:
            yield _slot(template, name, spec, conversion)


def _slot(template: Template, name: str, spec: str | None, conversion: str | None) -> Slot:
    shown = "{" + name + "}"
    if not name.isidentifier():
        raise TemplateError(
            template.key, f"placeholder {shown} must be a plain name (no position, index, dot)"
        )
    if spec or conversion:
        # A width or conversion would change the rendered length the cap was checked with.
        raise TemplateError(
            template.key, f"placeholder {shown} must have no format spec or conversion"
        )
    if name not in template.limits:
        allowed = ", ".join(sorted(template.limits))
        raise TemplateError(template.key, f"unknown placeholder {shown}; allowed: {allowed}")
    return Slot(name, template.limits[name])


# -- loading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Compiled:
    template: Template
    pieces: tuple[Piece, ...]  # literals already in the form they are sent
    worst_case: SegmentCount


def _template_for(key: NoticeKey, text: str, limits: Mapping[str, int]) -> Template:
    allowed = NOTICE_SPECS[key].allowed
    return Template(key, text, MappingProxyType({n: limits[n] for n in allowed}))


def _check_content(template: Template, unicode: bool) -> None:
    if not template.text.strip():
        raise TemplateError(template.key, "empty text")
    if not unicode and (lost := gsm7_unmappable(template.text)):
        shown = " ".join(sorted(lost))
        raise TemplateError(template.key, f"characters not sendable as GSM-7: {shown}")
    missing = NOTICE_SPECS[NoticeKey(template.key)].required - template.placeholders()
    if missing:
        names = ", ".join("{" + n + "}" for n in sorted(missing))
        raise TemplateError(template.key, f"missing required placeholder(s) {names}")


def _literal(text: str, unicode: bool) -> str:
    return tidy_unicode(text) if unicode else to_gsm7(text)


def _worst_case(pieces: Iterable[Piece], unicode: bool) -> SegmentCount:
    # A folded value costs one unit per character, so any one-unit filler is the worst case.
    # In Unicode mode count in UCS-2: one diacritic in a value forces it, and a text that
    # stays pure GSM goes as GSM-7, which is never more segments.
    text = "".join(p if isinstance(p, str) else "a" * p.max_length for p in pieces)
    return segments(text, Encoding.UCS2 if unicode else Encoding.GSM7)


def _compile(template: Template, unicode: bool, max_segments: int) -> _Compiled:
    _check_content(template, unicode)
    pieces = tuple(p if isinstance(p, Slot) else _literal(p, unicode) for p in template.pieces())
    worst = _worst_case(pieces, unicode)
    if worst.parts > max_segments:
        unit = "UTF-16 code units" if unicode else "septets"
        raise TemplateError(
            template.key,
            f"can render to {worst.parts} segments ({worst.units} {unit}) with every "
            f"placeholder at its maximum length{_codes_at_longest(pieces)}; "
            f"the cap is {max_segments}",
        )
    return _Compiled(template, pieces, worst)


def _codes_at_longest(pieces: Iterable[Piece]) -> str:
    """Why the codes count at their longest: they are never cut, so a text must fit them."""
    codes = sorted({(p.name, p.max_length) for p in pieces if isinstance(p, Slot) and p.whole})
    if not codes:
        return ""
    shown = ", ".join(f"{{{name}}} {length}" for name, length in codes)
    return f" (codes are never cut: {shown} characters)"


def load_templates(
    mapping: Mapping[str, str],
    *,
    unicode: bool,
    max_segments: int,
    limits: Mapping[str, int] | None = None,
) -> TemplateSet:
    """Validate and compile every notice text (key → text); all keys of ``NoticeKey`` needed.
    ``limits`` replaces some of ``PLACEHOLDER_LIMITS``: a value whose longest is known only
    from the settings (``{lookup}``, the lookup page's address with the code in it).

    Refused with a ``TemplateError`` naming the template: an unknown or missing key, an empty
    or malformed text, an unknown, positional or formatted placeholder, a required one left
    out, characters GSM-7 cannot carry (when not ``unicode``), or a worst case over
    ``max_segments``. Merge overrides over ``DEFAULT_TEXTS`` to change only some texts.
    """
    if isinstance(max_segments, bool) or max_segments < 1:
        raise ValueError(f"max_segments must be >= 1, got {max_segments!r}")
    unknown = sorted(set(mapping) - set(NoticeKey))
    if unknown:
        raise TemplateError(unknown[0], f"unknown template; known: {', '.join(NoticeKey)}")
    unknown_limits = sorted(set(limits or {}) - set(PLACEHOLDER_LIMITS))
    if unknown_limits:
        raise ValueError(f"no placeholder {unknown_limits[0]!r} to set a limit for")
    bounds = {**PLACEHOLDER_LIMITS, **(limits or {})}
    compiled: dict[str, _Compiled] = {}
    for key in NoticeKey:
        if key not in mapping:
            raise TemplateError(key, "missing: every notice needs a text")
        template = _template_for(key, mapping[key], bounds)
        compiled[key] = _compile(template, unicode, max_segments)
    return TemplateSet(unicode, max_segments, MappingProxyType(compiled))


def default_cap(unicode: bool) -> int:
    """The segment cap the default texts are built for: 2 GSM-7, 4 Unicode."""
    return DEFAULT_MAX_SEGMENTS_UNICODE if unicode else DEFAULT_MAX_SEGMENTS_GSM7


def default_templates(
    *,
    unicode: bool = False,
    max_segments: int | None = None,
    overrides: Mapping[str, str] | None = None,
    limits: Mapping[str, int] | None = None,
) -> TemplateSet:
    """``DEFAULT_TEXTS``, with ``overrides`` (key → text) over them, loaded with
    ``max_segments`` or the default cap of the mode, and ``limits`` (see load_templates)."""
    texts = {**DEFAULT_TEXTS, **(overrides or {})}
    cap = default_cap(unicode) if max_segments is None else max_segments
    return load_templates(texts, unicode=unicode, max_segments=cap, limits=limits)


# -- rendering ------------------------------------------------------------------------------


def value_text(key: str, name: str, value: object) -> str:
    if isinstance(value, datetime):
        return appointment_text(value)
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TemplateError(key, f"value of {{{name}}} must be str, int or datetime, not {value!r}")


def _to_bmp(text: str) -> str:
    return "".join("?" if ord(char) > 0xFFFF else char for char in text)


def _fold(text: str, unicode: bool) -> str:
    """One line of one-unit characters."""
    folded = _to_bmp(tidy_unicode(text)) if unicode else to_gsm7_basic(text)
    return " ".join(folded.split())


def fit_value(text: str, max_length: int, unicode: bool) -> str:
    """A value as it is sent: folded to one-unit characters, one line, at most
    ``max_length`` characters (cut ones end with an ellipsis)."""
    line = _fold(text, unicode)
    if len(line) <= max_length:
        return line
    ellipsis = "…" if unicode else "..."
    return line[: max_length - len(ellipsis)].rstrip() + ellipsis


@dataclass(frozen=True)
class TemplateSet:
    """Loaded templates for one mode (``unicode``) and cap (``max_segments``)."""

    unicode: bool
    max_segments: int
    _compiled: Mapping[str, _Compiled] = field(repr=False)

    def template(self, key: str) -> Template:
        return self._get(key).template

    def worst_case(self, key: str) -> SegmentCount:
        """The most a render of ``key`` can cost; at most ``max_segments`` parts."""
        return self._get(key).worst_case

    def render(self, key: str, values: Mapping[str, Value]) -> PreparedSms:
        """The notice with ``values`` filled in; extra values are ignored, a missing one is a
        TemplateError. Never more than ``max_segments`` segments."""
        compiled = self._get(key)
        text = "".join(self._fill(key, piece, values) for piece in compiled.pieces)
        return package(text, self.unicode)

    def _fill(self, key: str, piece: Piece, values: Mapping[str, Value]) -> str:
        if isinstance(piece, str):
            return piece
        if piece.name not in values:
            raise TemplateError(key, f"no value for placeholder {{{piece.name}}}")
        text = value_text(key, piece.name, values[piece.name])
        if not piece.whole:
            return fit_value(text, piece.max_length, self.unicode)
        line = _fold(text, self.unicode)
        if len(line) > piece.max_length:
            # Impossible for a code made or accepted by motcua (services.core.domain.codes);
            # failing here keeps a cut code from ever reaching anyone.
            raise TemplateError(
                key,
                f"{{{piece.name}}} is {len(line)} characters, over its {piece.max_length}; "
                "a code is never cut",
            )
        return line

    def _get(self, key: str) -> _Compiled:
        try:
            return self._compiled[key]
        except KeyError:
            raise TemplateError(key, "unknown template") from None
