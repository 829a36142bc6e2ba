"""The lookup page's words (services.intake.web.lookup_view): every status and every step a
dossier can take has its Vietnamese, and the parcel's every status too."""

from __future__ import annotations

from typing import get_args

from schemas.events import DossierStatus
from services.core.domain.lifecycle import Action
from services.core.domain.postal_status import PostalStatus
from services.intake.web.lookup_view import (
    POSTAL_WORDS,
    RECEIVE,
    RESULT_READY_MEANING,
    STATUS_WORDS,
    STEP_TITLES,
)


def test_every_status_has_words_and_a_tone() -> None:
    assert set(STATUS_WORDS) == set(DossierStatus)
    for words in STATUS_WORDS.values():
        assert words.title and words.tone in {"ok", "wait", "act", "end"}
    assert set(RESULT_READY_MEANING) == {"counter", "postal"}


def test_every_step_and_postal_status_has_a_title() -> None:
    assert set(STEP_TITLES) == {RECEIVE, *Action}
    assert set(POSTAL_WORDS) == {None, *get_args(PostalStatus)}
