"""The notice composer: a decided draft becomes a stored notice, rendered, addressed and timed
(quiet hours). Used by the handlers that decide notices and by the dispatcher, which decides
one when a postal order is placed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.core.phones import InvalidPhone, normalise_phone
from services.notifier.adapters import repository as repo
from services.notifier.domain.channels import SMS, ZALO, ZaloSetup
from services.notifier.domain.decisions import NoticeDraft, NoticePolicy
from services.notifier.domain.quiet_hours import QuietHours
from services.notifier.domain.templates import TemplateSet


@dataclass(frozen=True)
class Composer:
    """Turns drafts into stored notices: rendered, addressed, and timed."""

    templates: TemplateSet
    policy: NoticePolicy
    quiet: QuietHours | None = None
    zalo: ZaloSetup | None = None  # the kinds told by Zalo first

    def row(self, draft: NoticeDraft, now: datetime) -> dict[str, Any]:
        sms = self.templates.render(draft.key, draft.values)
        zns = self.zalo.zns(draft.key, draft.values) if self.zalo else None
        status, error, recipient = self._status(draft, now)
        when = self.quiet.release_at(now) if self.quiet and status == "held" else now
        return {
            "id": repo.notice_id(draft.source_key, recipient, draft.key.value),
            "source_key": draft.source_key,
            "recipient": recipient,
            "template": draft.key.value,
            "audience": draft.audience.value,
            "dossier_id": draft.dossier_id,
            "dossier_code": draft.dossier_code,
            "agency_code": draft.agency_code,
            "text": sms.text,
            "unicode": self.templates.unicode,
            "segments": sms.segments.parts,
            "status": status,
            "error": error,
            "next_attempt_at": when if status in ("held", "pending") else None,
            "channel": ZALO if zns else SMS,
            "zns": zns,
        }

    def _status(self, draft: NoticeDraft, now: datetime) -> tuple[str, str | None, str]:
        try:
            recipient = normalise_phone(draft.phone)
        except InvalidPhone:
            return "failed", "invalid phone number", draft.phone[:32]
        if draft.skip_reason:
            return "skipped", draft.skip_reason, recipient
        if self.quiet and self.quiet.contains(now):
            return "held", "quiet hours", recipient
        return "pending", None, recipient
