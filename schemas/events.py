"""Event contracts of motcua: the envelope and one payload model per event type.

Every event on a topic is an ``Envelope`` whose ``payload`` is one of the models below,
chosen by ``type`` (the calendar and directory topics have envelopes of their own, with a
typed ``payload`` and no dossier fields). Changing a model is changing the contract: bump
``version`` for a breaking change, regenerate the JSON Schema files
(``python -m schemas.generate``).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

ENVELOPE_VERSION = 1


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(Contract):
    """What every Kafka record's value holds (JSON)."""

    event_id: str = Field(description="UUID; consumers deduplicate on it")
    type: str = Field(description="event type, e.g. dossier.received")
    version: int = Field(default=ENVELOPE_VERSION, ge=1)
    occurred_at: AwareDatetime = Field(description="when the fact happened (may be in the past)")
    dossier_id: str
    dossier_code: str
    agency_code: str
    payload: dict[str, Any]


class TimeLimitPayload(Contract):
    """Thời hạn giải quyết."""

    value: int = Field(ge=1)
    unit: Literal["working_days", "working_hours", "calendar_days"]


class Applicant(Contract):
    """Người nộp hồ sơ. Personal data: never logged."""

    full_name: str
    phone: str = Field(description="E.164, e.g. +84912345678")
    id_number: str | None = Field(default=None, description="CCCD, 12 digits")
    email: str | None = None


class Address(Contract):
    street: str
    ward: str
    district: str
    province: str


class DossierStatus(StrEnum):
    """Trạng thái hồ sơ."""

    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    TRANSFERRED = "transferred"
    AWAITING_SUPPLEMENT = "awaiting_supplement"
    PAUSED = "paused"
    RESULT_READY = "result_ready"
    RETURNED = "returned"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


class DossierEvent(Contract):
    """Fields every dossier event carries: the action's time and the status it left."""

    at: AwareDatetime = Field(description="when the action happened (imported history may be old)")
    status: DossierStatus
    due_at: AwareDatetime | None = Field(description="the appointment in force after the action")


class DossierReceived(DossierEvent):
    """Giấy tiếp nhận hồ sơ và hẹn trả kết quả."""

    procedure_code: str
    procedure_name: str
    channel: Literal["counter", "online", "postal"]
    return_method: Literal["counter", "postal"]
    return_address: Address | None = None
    applicant: Applicant
    received_at: AwareDatetime
    clock_started_at: AwareDatetime
    time_limit: TimeLimitPayload
    cutoff_time: str | None = Field(
        default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM"
    )
    office_schedule: dict[str, Any] = Field(description="the agency's office blocks")


class DossierStarted(DossierEvent):
    """Chuyển xử lý: handed to the processing unit."""

    unit: str | None = None


class DossierTransferred(DossierEvent):
    """Chuyển liên thông: one step of the inter-agency process."""

    from_agency: str
    to_agency: str
    allotted_hours: int | None = None
    step_due_at: AwareDatetime | None = None


class SupplementRequested(DossierEvent):
    """Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ. The clock stops."""

    items: list[str]
    reason: str
    request_number: int = Field(ge=1, description="2+ is a violation: all items at once")


class SupplementReceived(DossierEvent):
    """The complete dossier arrived: the full time limit counts again from ``at``."""

    clock_started_at: AwareDatetime


class DossierPaused(DossierEvent):
    """Tạm dừng, e.g. waiting for the applicant's financial obligations."""

    reason: str
    remaining_working_minutes: int | None


class DossierResumed(DossierEvent):
    """The remaining working time continues."""


class DossierExtended(DossierEvent):
    """Phiếu xin lỗi và hẹn lại ngày trả kết quả (at most once)."""

    previous_due_at: AwareDatetime
    original_due_at: AwareDatetime
    reason: str


class ResultReady(DossierEvent):
    """Có kết quả."""

    return_method: Literal["counter", "postal"]
    original_due_at: AwareDatetime | None
    outcome: Literal["early", "on_time", "late"] | None


class DossierReturned(DossierEvent):
    """Đã trả kết quả."""


class DossierRejected(DossierEvent):
    """Phiếu từ chối giải quyết hồ sơ."""

    reason: str


class DossierWithdrawn(DossierEvent):
    """Dừng / rút hồ sơ at the applicant's request."""

    reason: str


class PersonalDataErased(DossierEvent):
    """Xoá dữ liệu cá nhân (Decree 13/2023/NĐ-CP): the retention after the dossier closed has
    passed; the applicant's name, phone, ID number, e-mail and address were erased at the
    intake, and every service that holds a copy erases its own. The dossier's code,
    procedure, dates and outcome stay. ``at`` is when the intake erased; ``status`` the final
    status the dossier closed with; ``due_at`` None (nothing is owed any more)."""

    closed_at: AwareDatetime = Field(
        description="when the dossier was closed: the retention counted from it"
    )


DOSSIER_EVENTS: dict[str, type[DossierEvent]] = {
    "dossier.received": DossierReceived,
    "dossier.started": DossierStarted,
    "dossier.transferred": DossierTransferred,
    "dossier.supplement_requested": SupplementRequested,
    "dossier.supplement_received": SupplementReceived,
    "dossier.paused": DossierPaused,
    "dossier.resumed": DossierResumed,
    "dossier.extended": DossierExtended,
    "dossier.result_ready": ResultReady,
    "dossier.returned": DossierReturned,
    "dossier.rejected": DossierRejected,
    "dossier.withdrawn": DossierWithdrawn,
    "dossier.personal_data_erased": PersonalDataErased,
}

EVENT_TYPE_OF: dict[type[DossierEvent], str] = {v: k for k, v in DOSSIER_EVENTS.items()}


def parse_payload(envelope: Envelope) -> DossierEvent:
    """The typed payload of a dossier envelope; KeyError for an unknown type."""
    return DOSSIER_EVENTS[envelope.type].model_validate(envelope.payload)


# -- motcua.deadline.v1 (tracker) -----------------------------------------------------------


class DeadlineChanged(Contract):
    """The appointment in force changed: a clock transition, or a calendar change."""

    due_at: AwareDatetime | None = Field(description="None while the clock is stopped")
    version: int = Field(ge=1, description="deadline version; flags refer to it")
    reason: str = Field(description="received, supplement_requested, …, calendar_changed")


class DeadlineDueSoon(Contract):
    """Sắp đến hạn: the remaining working time fell to the threshold (once per version)."""

    due_at: AwareDatetime
    version: int = Field(ge=1)
    remaining_working_minutes: int = Field(ge=0)
    handling_agency: str = Field(description="the agency holding the dossier now")


class DeadlineOverdue(Contract):
    """Quá hạn: past the deadline without a result (once per version)."""

    due_at: AwareDatetime
    version: int = Field(ge=1)
    overdue_working_minutes: int = Field(ge=0)
    handling_agency: str


class StepOverdue(Contract):
    """An inter-agency step ran past its allotted hours; ``agency_code`` is the late agency."""

    agency_code: str
    step_number: int = Field(ge=1)
    handed_over_at: AwareDatetime
    step_due_at: AwareDatetime


class DeadlineClosed(Contract):
    """The clock ended: result ready (with its outcome), rejected or withdrawn."""

    reason: Literal["result_ready", "rejected", "withdrawn"]
    outcome: Literal["early", "on_time", "late"] | None
    finished_at: AwareDatetime
    due_at: AwareDatetime | None = Field(
        description="the appointment in force when the clock ended; None when it ended while "
        "stopped (rejected or withdrawn awaiting a supplement or paused): no date was owed"
    )
    original_due_at: AwareDatetime | None = Field(description="before the extension, if any")
    version: int = Field(ge=1)


DEADLINE_EVENTS: dict[str, type[Contract]] = {
    "deadline.changed": DeadlineChanged,
    "deadline.due_soon": DeadlineDueSoon,
    "deadline.overdue": DeadlineOverdue,
    "deadline.step_overdue": StepOverdue,
    "deadline.closed": DeadlineClosed,
}


def parse_deadline_payload(envelope: Envelope) -> Contract:
    """The typed payload of a deadline envelope; KeyError for an unknown type."""
    return DEADLINE_EVENTS[envelope.type].model_validate(envelope.payload)


# -- motcua.notification.v1 (notifier): standard Envelope keyed by dossier id --------------


class PostalOrdered(Contract):
    """Đã tạo bưu gửi: the postal operator accepted the return order and gave its tracking code
    (mã bưu gửi); the citizen is texted it."""

    reference: str = Field(description="the dossier code (mã hồ sơ), as sent to the operator")
    tracking_code: str = Field(description="mã bưu gửi, as the postal operator gave it")
    at: AwareDatetime = Field(description="when the operator accepted the order")


class PostalStatusChanged(Contract):
    """Trạng thái bưu gửi, as the postal operator reported it: đã lấy hàng (picked_up), đang
    vận chuyển (in_transit), phát thành công (delivered: the result reached the citizen),
    phát không thành công (failed), chuyển hoàn (returned to the agency)."""

    tracking_code: str = Field(description="mã bưu gửi of the order")
    status: Literal["picked_up", "in_transit", "delivered", "failed", "returned"]
    at: AwareDatetime = Field(
        description="when the status was reported; a status older than the last one is stale"
    )


NOTIFICATION_EVENTS: dict[str, type[Contract]] = {
    "postal.ordered": PostalOrdered,
    "postal.status_changed": PostalStatusChanged,
}


def parse_notification_payload(envelope: Envelope) -> Contract:
    """The typed payload of a notification envelope; KeyError for an unknown type."""
    return NOTIFICATION_EVENTS[envelope.type].model_validate(envelope.payload)


# -- motcua.calendar.v1 (intake) ------------------------------------------------------------

CALENDAR_CHANGED = "calendar.changed"


class CalendarDay(Contract):
    """Ngày nghỉ / ngày làm việc bù announced for one day, overriding the holidays package."""

    day: date
    kind: Literal["day_off", "workday"]
    note: str = ""


class CalendarChanged(Contract):
    """An admin set or removed the override of ``day``; ``overrides`` is the whole table after
    the change, so a consumer may replace its copy and stays right even if it missed one."""

    day: date
    kind: Literal["day_off", "workday"] | None = Field(description="None: override removed")
    overrides: list[CalendarDay]


class CalendarEnvelope(Contract):
    """What every record of ``motcua.calendar.v1`` holds (key ``calendar``: one partition,
    one order)."""

    event_id: str
    type: Literal["calendar.changed"]
    version: int = Field(default=ENVELOPE_VERSION, ge=1)
    occurred_at: AwareDatetime
    payload: CalendarChanged


# -- motcua.directory.v1 (intake): who supervises each agency ------------------------------

SUPERVISORS_CHANGED = "directory.supervisors_changed"


class Supervisor(Contract):
    """Lãnh đạo cơ quan: receives overdue alerts and digests. Personal data: never logged."""

    id: str
    name: str
    phone: str = Field(description="E.164, e.g. +84912345678")
    email: str | None = None


class SupervisorsChanged(Contract):
    """The directory entry of ``agency_code`` changed (its supervisors, or its name);
    ``supervisors`` is the agency's whole list after the change, so a consumer may replace its
    copy and stays right even if it missed one."""

    agency_code: str
    # Optional, so the records published before it existed still parse: None says nothing
    # about the name (a consumer keeps the one it has), it does not clear it.
    agency_name: str | None = Field(
        default=None, description="the agency's name (tên cơ quan); absent in older records"
    )
    supervisors: list[Supervisor] = Field(description="the agency's whole list after the change")


class DirectoryEnvelope(Contract):
    """What every record of ``motcua.directory.v1`` holds (key: the agency code, so one
    agency's changes stay in order on one partition)."""

    event_id: str
    type: Literal["directory.supervisors_changed"]
    version: int = Field(default=ENVELOPE_VERSION, ge=1)
    occurred_at: AwareDatetime
    payload: SupervisorsChanged
