"""The notifier's internal HTTP routes, the contract between it and the intake.

The notices and postal orders live in the notifier's tables, which no other service reads:
the intake, having decided who may see what (services.intake.domain.access), asks the
notifier here, with the shared secret MOTCUA_INTERNAL_TOKEN in ``INTERNAL_TOKEN_HEADER``.

- ``GET /internal/dossiers/{dossier_id}/notices``: every SMS and postal order about one
  dossier (``DossierNotices``);
- ``GET /internal/notices/failed?agency=&from=&to=``: what failed for good in a period, of one
  agency or of all (``FailedNotices``).

No phone leaves the notifier whole: ``recipient`` is masked (services.core.phones.mask_phone).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

INTERNAL_TOKEN_HEADER = "X-Motcua-Internal-Token"
INTERNAL_PREFIX = "/internal"
FAILED_LIMIT_MAX = 200


class InternalModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoticeStep(InternalModel):
    """One change of a notice's status, as the notifier recorded it."""

    status: str = Field(
        description="SMS: held (quiet hours), pending, accepted (by the gateway), retry, "
        "delivered, failed, skipped; postal order: pending, placed, failed, then the "
        "operator's picked_up, in_transit, delivered, failed, returned"
    )
    at: AwareDatetime
    detail: str | None = Field(
        default=None, description="the gateway's name, its error, the tracking code"
    )


class SentNotice(InternalModel):
    """An SMS, or a postal order, about a dossier (or a digest, about none)."""

    kind: Literal["sms", "postal"]
    role: str = Field(description="who it was for: citizen (the applicant) or supervisor")
    recipient: str = Field(description="the phone, masked: +8491*****78")
    template: str | None = Field(description="which notice (received, overdue_alert…); "
                                 "None for a postal order")  # fmt: skip
    text: str = Field(description="the SMS as sent, or what the parcel holds")
    status: str = Field(description="where it stands now: the last of `history`")
    reason: str | None = Field(description="why it failed, when it did: the gateway's words")
    tracking_code: str | None = Field(description="the postal order's, once placed")
    dossier_code: str | None
    agency_code: str | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    history: list[NoticeStep] = Field(description="oldest first")


class DossierNotices(InternalModel):
    notices: list[SentNotice] = Field(description="in the order they were decided")


class FailedNotices(InternalModel):
    notices: list[SentNotice] = Field(description="the latest failures first")
    total: int = Field(description="how many failed in the period, beyond those listed too")
