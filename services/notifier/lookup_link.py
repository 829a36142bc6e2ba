"""Where a text tells its reader to look the dossier up: the ``{lookup}`` of the templates.

- ``MOTCUA_LOOKUP_URL`` when set: one address for every text, as an admin gave it (at most
  40 characters);
- else, with ``MOTCUA_PUBLIC_URL`` set, the intake's lookup page with the dossier's code filled
  in (services.intake.web.urls, the address on the receipt slip's QR code too): the citizen
  taps the link and types only her phone;
- else the national portal, which does not know motcua's codes: nothing else is known to
  reach this office from a phone, and a loopback address in a citizen's SMS would be worse.

The page's address is as long as the public URL makes it, so the templates are loaded with
``{lookup}`` at its longest (the longest dossier code in it): a text it would push past the
segment cap stops the notifier at start, as any too-long template does, and a sent link is
never cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.core.domain.codes import DOSSIER_CODE_MAX_LENGTH
from services.core.runtime.settings import Settings
from services.intake.web.urls import lookup_url
from services.notifier.domain.notices import PLACEHOLDER_LIMITS

NATIONAL_PORTAL = "dichvucong.gov.vn"


@dataclass(frozen=True)
class LookupLink:
    fixed: str | None = None  # MOTCUA_LOOKUP_URL
    public_url: str | None = None  # MOTCUA_PUBLIC_URL

    @classmethod
    def of(cls, settings: Settings) -> LookupLink:
        return cls(settings.lookup_url, settings.public_url)

    @property
    def is_page(self) -> bool:
        return self.fixed is None and self.public_url is not None

    def __call__(self, code: str | None) -> str:
        """The address for the dossier ``code`` (None: a text about no one dossier)."""
        if self.fixed is not None:
            return self.fixed
        if self.public_url is not None:
            return lookup_url(self.public_url, code)
        return NATIONAL_PORTAL

    def limits(self) -> Mapping[str, int]:
        """``{lookup}``'s longest, for loading the templates."""
        if not self.is_page:
            return {"lookup": PLACEHOLDER_LIMITS["lookup"]}
        return {"lookup": len(self("X" * DOSSIER_CODE_MAX_LENGTH))}
