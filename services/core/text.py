"""What a string from outside may contain: no control characters, no bidirectional overrides.

Refused in every string a client sends (body fields, path and query parameters):

- the C0 controls U+0000–U+001F, except tab and line feed in free text (a reason, a note);
- DEL (U+007F) and the C1 controls U+0080–U+009F;
- the bidirectional embeddings and overrides U+202A–U+202E and isolates U+2066–U+2069.

PostgreSQL's text cannot hold U+0000 (a query carrying one is an error, hence a 500), and an
SMS gateway refuses a text with one: a NUL in an applicant's name was stored and then blocked
every SMS of the dossier. The other controls corrupt logs, CSV exports and SMS segment counts;
bidirectional controls make a name or a code read as something other than what it is.
"""

from __future__ import annotations

import re

_CONTROLS = "\x7f-\x9f\u202a-\u202e\u2066-\u2069"
_NOT_IN_A_LINE = re.compile(f"[\x00-\x1f{_CONTROLS}]")
_NOT_IN_FREE_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f{_CONTROLS}]")  # \t and \n allowed
PROBLEM = "must not contain control characters or bidirectional formatting characters"


def forbidden_character(value: str, *, free_text: bool = False) -> str | None:
    """The first character of `value` that is refused, as "U+0000"; None when there is none."""
    found = (_NOT_IN_FREE_TEXT if free_text else _NOT_IN_A_LINE).search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def problem_with(value: str, *, free_text: bool = False) -> str | None:
    """What is wrong with `value`, for an error message; None when nothing is."""
    char = forbidden_character(value, free_text=free_text)
    return f"{PROBLEM} (found {char})" if char else None
