"""Request and response bodies of the intake HTTP API (docs/api.md)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    field_validator,
)

from services.core.domain.calendar import VN_TZ
from services.core.domain.codes import AGENCY_CODE_MAX_LENGTH, AGENCY_CODE_PATTERN
from services.core.phones import InvalidPhone, normalise_phone
from services.core.runtime.request_models import FREE_TEXT, RequestModel

# An agency code: its length bounds the dossier code's, which every text shows whole.
Code = Annotated[
    str,
    StringConstraints(min_length=1, max_length=AGENCY_CODE_MAX_LENGTH, pattern=AGENCY_CODE_PATTERN),
]
ProcedureCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
SupervisorId = Annotated[str, StringConstraints(max_length=36)]
"""As the intake gives them (a UUID); any other string is simply not found."""
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=1000), FREE_TEXT
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
FlagName = Literal["due_soon", "overdue"]
# [0-9], never \d: a Unicode \d (and str.isdigit) takes full-width and other scripts' digits.
_CUTOFF = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_ISO_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")
# The days the API takes, in times and in dates: the calendars (holidays, Tết) cover them;
# times near year 1 or 9999 overflow on conversion to +07:00, and working-time arithmetic over
# centuries would hold the event loop for seconds.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(2099, 12, 31)
_EARLIEST = datetime.combine(FIRST_DAY, time.min, UTC)
_LATEST = datetime.combine(LAST_DAY + timedelta(days=1), time.min, UTC)
_RANGE = f"must be between {FIRST_DAY} and {LAST_DAY}"


def _iso_8601(value: Any) -> Any:
    # Unless told otherwise pydantic also reads 1700000000 and "1700000000" as Unix time.
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATETIME.match(value)):
        return value
    raise ValueError("expected an ISO 8601 time with its offset, e.g. 2026-11-16T09:00:00+07:00")


def _plausible(value: datetime) -> datetime:
    if not _EARLIEST <= value < _LATEST:
        raise ValueError(_RANGE)
    return value


# Strict(False) on top of the bodies' strict mode: a JSON time is a string to be parsed.
Moment = Annotated[
    AwareDatetime, Strict(False), BeforeValidator(_iso_8601), AfterValidator(_plausible)
]


def _iso_date(value: Any) -> Any:
    if isinstance(value, date) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("expected a date as YYYY-MM-DD")


def _plausible_day(value: date) -> date:
    if not FIRST_DAY <= value <= LAST_DAY:
        raise ValueError(_RANGE)
    return value


Day = Annotated[date, BeforeValidator(_iso_date), AfterValidator(_plausible_day)]
"""A day as YYYY-MM-DD in 2000–2099 (the tracker's calendar has no other)."""


def _in_vietnam(value: datetime) -> datetime:
    return value.astimezone(VN_TZ)


LocalTime = Annotated[datetime, AfterValidator(_in_vietnam)]
"""A time in a response: always shown at +07:00, whatever the database handed back."""


class Body(RequestModel):
    """A request body: unknown fields refused; control characters refused (RequestModel);
    strict types, so true is not 1, "10" is not 10 and "yes" is not true."""

    model_config = ConfigDict(extra="forbid", str_max_length=2000, strict=True)


def _phone(value: str) -> str:
    try:
        return normalise_phone(value)
    except InvalidPhone as exc:
        raise ValueError(f"{exc}: expected a Vietnamese mobile number") from exc


Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(_phone)]


class TimeLimitIn(Body):
    value: int = Field(ge=1, le=3650)
    unit: Literal["working_days", "working_hours", "calendar_days"]


class ProcedureIn(Body):
    code: ProcedureCode
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    agency_code: Code
    time_limit: TimeLimitIn
    cutoff_time: str | None = Field(default=None, description="HH:MM, e.g. 15:00")
    postal_return: bool = False

    @field_validator("cutoff_time")
    @classmethod
    def _cutoff(cls, value: str | None) -> str | None:
        if value is not None and not _CUTOFF.match(value):
            raise ValueError("expected HH:MM, e.g. 15:00")
        return value

    def cutoff(self) -> time | None:
        return time.fromisoformat(self.cutoff_time) if self.cutoff_time else None


class ProcedureOut(BaseModel):
    code: str
    name: str
    agency_code: str
    time_limit: TimeLimitIn
    cutoff_time: str | None
    postal_return: bool


class AgencyIn(Body):
    name: Name
    office_schedule: dict[str, Any] | None = Field(
        default=None,
        description='{"week": {"0": [["08:00","12:00"],["13:00","17:00"]], ...}}; 0 = Monday',
    )


class AgencyOut(BaseModel):
    code: str
    name: str
    office_schedule: dict[str, Any]


class SupervisorIn(Body):
    name: Name
    phone: Phone
    email: Email | None = None


class SupervisorOut(BaseModel):
    id: str
    agency_code: str
    name: str
    phone: str
    email: str | None


def _not_all_zeros(value: str) -> str:
    if not value.strip("0"):
        raise ValueError("is not a citizen ID number")
    return value


IdNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}$"), AfterValidator(_not_all_zeros)]


class ApplicantIn(Body):
    full_name: Name
    phone: Phone
    id_number: IdNumber | None = Field(default=None, description="CCCD: 12 ASCII digits")
    email: Email | None = None


class AddressIn(Body):
    street: Name
    ward: Name
    district: Name
    province: Name


class DocumentIn(Body):
    """A paper handed in (thành phần hồ sơ), as the receipt slip lists it."""

    name: Name = Field(description="e.g. Đơn đăng ký biến động đất đai (bản chính)")
    copies: int = Field(ge=1, le=99, description="số bản")


class DocumentOut(BaseModel):
    name: str
    copies: int


class DossierIn(Body):
    procedure_code: ProcedureCode
    applicant: ApplicantIn
    channel: Literal["counter", "online", "postal"]
    return_method: Literal["counter", "postal"]
    return_address: AddressIn | None = None
    received_at: Moment | None = Field(
        default=None, description="for importing existing dossiers; default now"
    )
    documents: list[DocumentIn] = Field(
        default_factory=list,
        max_length=50,
        description="the papers received, listed on the receipt slip; none by default",
    )


class ActionIn(Body):
    at: Moment | None = Field(default=None, description="for importing history")


class StartIn(ActionIn):
    unit: Name | None = None


class TransferIn(ActionIn):
    to_agency: Code
    allotted_hours: int | None = Field(default=None, ge=1, le=2000)


class SupplementRequestIn(ActionIn):
    items: list[Text] = Field(min_length=1, max_length=50)
    reason: Text


class ReasonIn(ActionIn):
    reason: Text


class ExtendIn(ActionIn):
    new_due_at: Moment
    reason: Text


class HistoryOut(BaseModel):
    action: str
    at: LocalTime
    status: str
    details: dict[str, Any]


class PostalOut(BaseModel):
    """Bưu gửi trả kết quả: the postal return as the postal operator last reported it."""

    tracking_code: str = Field(description="mã bưu gửi")
    status: Literal["picked_up", "in_transit", "delivered", "failed", "returned"] | None = Field(
        description="delivered: phát thành công; returned: chuyển hoàn; None until reported"
    )
    status_at: LocalTime | None


class DossierOut(BaseModel):
    id: str
    code: str
    status: str
    agency_code: str
    handling_agency: str | None
    procedure_code: str
    procedure_name: str
    channel: str
    return_method: str
    return_address: dict[str, str] | None = Field(
        description="null: return at the counter, or erased (personal_data_erased_at)"
    )
    postal: PostalOut | None = Field(default=None, description="null: no postal return ordered")
    applicant: dict[str, Any] | None = Field(
        description="null once erased, a retention after the dossier closed (docs/privacy.md)"
    )
    personal_data_erased_at: LocalTime | None = Field(
        default=None,
        description="when the applicant's name, phone, ID number, e-mail and address were "
        "erased; null while they are kept",
    )
    received_at: LocalTime
    documents: list[DocumentOut] = Field(
        description="the papers received; empty when none were listed, or once erased"
    )
    due_at: LocalTime | None
    original_due_at: LocalTime | None
    flag: Literal["due_soon", "overdue"] | None
    outcome: Literal["early", "on_time", "late"] | None
    supplement_requests: int
    history: list[HistoryOut]


class DossierPage(BaseModel):
    items: list[DossierOut]
    next_cursor: str | None


class PublicDossierOut(BaseModel):
    """What anyone holding the code and the phone may see: no personal data."""

    code: str
    status: str
    procedure_name: str
    received_at: LocalTime
    due_at: LocalTime | None


class CalendarDayIn(Body):
    kind: Literal["day_off", "workday"]
    note: Annotated[str, StringConstraints(max_length=300), FREE_TEXT] = ""


class CalendarDayOut(BaseModel):
    day: str
    kind: str
    note: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail
