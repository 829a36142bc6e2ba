"""The rating page's link in the "returned" text: the ``{rating}`` of the templates.

With MOTCUA_PUBLIC_URL and MOTCUA_LINK_SECRET set, a returned dossier's text is
``returned_rating``, which links to the intake's rating page of that dossier,
``{public url}/danh-gia/<code>/<mac>`` (services.intake.web.urls, the MAC of
services.intake.link_mac, which the intake checks with the same secret). Without either, the
text is ``returned``, with no link: nothing else is known to reach the page from a phone.

The link is as long as the public URL makes it, so the templates are loaded with
``{rating}`` at its longest (the longest dossier code in it): a text it would push past the
segment cap stops the notifier at start, and a sent link is never cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.core.domain.codes import DOSSIER_CODE_MAX_LENGTH
from services.core.runtime.settings import Settings
from services.intake.link_mac import MAC_LENGTH, link_mac
from services.intake.web.urls import rating_url


@dataclass(frozen=True)
class RatingLink:
    public_url: str | None = None  # MOTCUA_PUBLIC_URL
    secret: str | None = None  # MOTCUA_LINK_SECRET

    @classmethod
    def of(cls, settings: Settings) -> RatingLink:
        return cls(settings.public_url, settings.link_key)

    @property
    def is_on(self) -> bool:
        return self.public_url is not None and self.secret is not None

    def __call__(self, dossier_id: str, code: str) -> str | None:
        """The rating page of this dossier; None when no link can be made."""
        if self.public_url is None or self.secret is None:
            return None
        return rating_url(self.public_url, code, link_mac(self.secret, dossier_id))

    def limits(self) -> Mapping[str, int]:
        """``{rating}``'s longest, for loading the templates (none when it is never sent)."""
        if self.public_url is None or self.secret is None:
            return {}
        longest = rating_url(self.public_url, "X" * DOSSIER_CODE_MAX_LENGTH, "m" * MAC_LENGTH)
        return {"rating": len(longest)}
