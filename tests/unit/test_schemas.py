"""Event contracts: generated JSON Schema / AsyncAPI files and the pydantic models agree.

JSON Schema validation uses the `jsonschema` package when it is installed, else
`jsonschema_rs` (installed with schemathesis); with neither, only pydantic validates and the
JSON Schema tests are skipped.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from schemas import generate
from schemas.events import (
    CALENDAR_CHANGED,
    DEADLINE_EVENTS,
    DOSSIER_EVENTS,
    EVENT_TYPE_OF,
    NOTIFICATION_EVENTS,
    SUPERVISORS_CHANGED,
    Address,
    Applicant,
    CalendarChanged,
    CalendarDay,
    CalendarEnvelope,
    Contract,
    DirectoryEnvelope,
    DossierEvent,
    DossierExtended,
    DossierPaused,
    DossierReceived,
    DossierRejected,
    DossierResumed,
    DossierReturned,
    DossierStarted,
    DossierStatus,
    DossierTransferred,
    DossierWithdrawn,
    Envelope,
    PersonalDataErased,
    PostalOrdered,
    PostalStatusChanged,
    ResultReady,
    Supervisor,
    SupervisorsChanged,
    SupplementReceived,
    SupplementRequested,
    TimeLimitPayload,
    parse_deadline_payload,
    parse_notification_payload,
    parse_payload,
)
from services.tracker.domain import outgoing
from services.tracker.domain.outgoing import DeadlineEvent

ICT = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh, no DST


def ict(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ICT)


# -- JSON Schema validation -----------------------------------------------------------------

Validate = Callable[[dict[str, Any], Any], list[str]]


def _pick_validator() -> tuple[str, Validate | None]:
    try:
        import jsonschema
    except ImportError:
        pass
    else:

        def with_jsonschema(schema: dict[str, Any], instance: Any) -> list[str]:
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
            return [e.message for e in validator.iter_errors(instance)]

        return "jsonschema", with_jsonschema
    try:
        import jsonschema_rs
    except ImportError:
        return "pydantic only", None

    def with_jsonschema_rs(schema: dict[str, Any], instance: Any) -> list[str]:
        if "$schema" in schema:
            validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        else:  # AsyncAPI schema objects are JSON Schema draft 07 supersets
            validator = jsonschema_rs.Draft7Validator(schema, validate_formats=True)
        return [e.message for e in validator.iter_errors(instance)]

    return "jsonschema_rs", with_jsonschema_rs


VALIDATOR_NAME, _validate = _pick_validator()
needs_validator = pytest.mark.skipif(
    _validate is None, reason="no JSON Schema validator installed: pydantic validation only"
)


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    assert _validate is not None
    return _validate(schema, instance)


def load_json_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((generate.JSON_DIR / name).read_text(encoding="utf-8"))
    return schema


def load_asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(generate.ASYNCAPI_PATH.read_text(encoding="utf-8"))
    return doc


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local refs expected, got {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# -- examples -------------------------------------------------------------------------------

DOSSIER_ID = "0b9f6f0e-3c1a-4a8e-9d43-6f1d2b7c5e21"
DOSSIER_CODE = "000.00.07.H29-260302-0001"
AGENCY = "UBND-Q1"

RECEIVED_AT = ict(2026, 3, 2, 9, 15)  # Monday
DUE_AT = ict(2026, 3, 9, 9, 15)  # 5 working days later

OFFICE_SCHEDULE: dict[str, Any] = {
    "week": {str(d): [["07:30", "11:30"], ["13:00", "17:00"]] for d in range(5)},
    "makeup_blocks": [["07:30", "11:30"], ["13:00", "17:00"]],
}

EXAMPLES: list[tuple[str, DossierEvent]] = [
    (
        "dossier.received",
        DossierReceived(
            at=RECEIVED_AT,
            status=DossierStatus.RECEIVED,
            due_at=DUE_AT,
            procedure_code="1.001612",
            procedure_name="Đăng ký thành lập hộ kinh doanh",
            channel="counter",
            return_method="postal",
            return_address=Address(
                street="12 Lê Lợi",
                ward="Phường Bến Nghé",
                district="Quận 1",
                province="Thành phố Hồ Chí Minh",
            ),
            applicant=Applicant(
                full_name="Nguyễn Thị Thu Hương",
                phone="+84912345678",
                id_number="079190001234",
                email="huong.nguyen@example.vn",
            ),
            received_at=RECEIVED_AT,
            clock_started_at=RECEIVED_AT,
            time_limit=TimeLimitPayload(value=5, unit="working_days"),
            cutoff_time="15:00",
            office_schedule=OFFICE_SCHEDULE,
        ),
    ),
    (
        "dossier.received",  # online, minimal: optional fields left out
        DossierReceived(
            at=ict(2026, 3, 2, 16, 40),
            status=DossierStatus.RECEIVED,
            due_at=ict(2026, 3, 4, 16, 0),
            procedure_code="2.000986",
            procedure_name="Chứng thực bản sao từ bản chính",
            channel="online",
            return_method="counter",
            applicant=Applicant(full_name="Trần Văn Bảo", phone="+84387654321"),
            received_at=ict(2026, 3, 2, 16, 40),
            clock_started_at=ict(2026, 3, 3, 7, 30),
            time_limit=TimeLimitPayload(value=8, unit="working_hours"),
            office_schedule=OFFICE_SCHEDULE,
        ),
    ),
    (
        "dossier.started",
        DossierStarted(
            at=ict(2026, 3, 2, 10, 0),
            status=DossierStatus.IN_PROGRESS,
            due_at=DUE_AT,
            unit="Phòng Tài chính - Kế hoạch",
        ),
    ),
    (
        "dossier.transferred",
        DossierTransferred(
            at=ict(2026, 3, 3, 14, 0),
            status=DossierStatus.TRANSFERRED,
            due_at=DUE_AT,
            from_agency=AGENCY,
            to_agency="CCT-Q1",
            allotted_hours=16,
            step_due_at=ict(2026, 3, 5, 14, 0),
        ),
    ),
    (
        "dossier.supplement_requested",
        SupplementRequested(
            at=ict(2026, 3, 3, 15, 30),
            status=DossierStatus.AWAITING_SUPPLEMENT,
            due_at=None,
            items=["Bản sao hợp đồng thuê nhà", "Giấy ủy quyền có chứng thực"],
            reason="Thiếu giấy tờ chứng minh địa điểm kinh doanh",
            request_number=1,
        ),
    ),
    (
        "dossier.supplement_received",
        SupplementReceived(
            at=ict(2026, 3, 6, 8, 45),
            status=DossierStatus.IN_PROGRESS,
            due_at=ict(2026, 3, 13, 8, 45),
            clock_started_at=ict(2026, 3, 6, 8, 45),
        ),
    ),
    (
        "dossier.paused",
        DossierPaused(
            at=ict(2026, 3, 9, 10, 0),
            status=DossierStatus.PAUSED,
            due_at=None,
            reason="Chờ người nộp hồ sơ thực hiện nghĩa vụ tài chính",
            remaining_working_minutes=1380,
        ),
    ),
    (
        "dossier.resumed",
        DossierResumed(
            at=ict(2026, 3, 11, 9, 0), status=DossierStatus.IN_PROGRESS, due_at=ict(2026, 3, 14)
        ),
    ),
    (
        "dossier.extended",
        DossierExtended(
            at=ict(2026, 3, 12, 16, 0),
            status=DossierStatus.IN_PROGRESS,
            due_at=ict(2026, 3, 18, 16, 0),
            previous_due_at=ict(2026, 3, 13, 8, 45),
            original_due_at=DUE_AT,
            reason="Cần xác minh thực địa địa điểm kinh doanh",
        ),
    ),
    (
        "dossier.result_ready",
        ResultReady(
            at=ict(2026, 3, 17, 11, 0),
            status=DossierStatus.RESULT_READY,
            due_at=ict(2026, 3, 18, 16, 0),
            return_method="postal",
            original_due_at=DUE_AT,
            outcome="late",
        ),
    ),
    (
        "dossier.returned",
        DossierReturned(
            at=ict(2026, 3, 18, 9, 30), status=DossierStatus.RETURNED, due_at=ict(2026, 3, 18, 16)
        ),
    ),
    (
        "dossier.rejected",
        DossierRejected(
            at=ict(2026, 3, 4, 14, 0),
            status=DossierStatus.REJECTED,
            due_at=DUE_AT,
            reason="Ngành nghề kinh doanh thuộc danh mục cấm",
        ),
    ),
    (
        "dossier.withdrawn",
        DossierWithdrawn(
            at=ict(2026, 3, 3, 8, 0),
            status=DossierStatus.WITHDRAWN,
            due_at=DUE_AT,
            reason="Người nộp xin rút hồ sơ để bổ sung ngành nghề",
        ),
    ),
    (
        "dossier.personal_data_erased",
        PersonalDataErased(
            at=ict(2027, 3, 19, 3, 0),
            status=DossierStatus.RETURNED,
            due_at=None,
            closed_at=ict(2026, 3, 18, 9, 30),
        ),
    ),
]

EXAMPLE_PARAMS = [
    pytest.param(event_type, event, id=f"{event_type}-{i}")
    for i, (event_type, event) in enumerate(EXAMPLES)
]


def envelope_for(event_type: str, event: DossierEvent) -> Envelope:
    return Envelope(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{DOSSIER_ID}/{event_type}/{event.at}")),
        type=event_type,
        occurred_at=event.at,
        dossier_id=DOSSIER_ID,
        dossier_code=DOSSIER_CODE,
        agency_code=AGENCY,
        payload=event.model_dump(mode="json"),
    )


def test_every_event_type_has_an_example() -> None:
    assert {t for t, _ in EXAMPLES} == set(DOSSIER_EVENTS)
    for event_type, event in EXAMPLES:
        assert isinstance(event, DOSSIER_EVENTS[event_type])
        assert EVENT_TYPE_OF[type(event)] == event_type


# Built by the tracker itself, so a builder drifting from its contract fails here.
DEADLINE_EXAMPLES: list[DeadlineEvent] = [
    outgoing.changed(DOSSIER_ID, RECEIVED_AT, DUE_AT, 1, "received"),
    outgoing.changed(DOSSIER_ID, ict(2026, 3, 3, 15, 30), None, 1, "supplement_requested"),
    outgoing.due_soon(DOSSIER_ID, ict(2026, 3, 6, 9, 15), DUE_AT, 1, 480, AGENCY),
    outgoing.overdue(DOSSIER_ID, ict(2026, 3, 9, 9, 45), DUE_AT, 1, 30, "CCT-Q1"),
    outgoing.step_overdue(
        DOSSIER_ID,
        ict(2026, 3, 5, 14, 0),
        2,
        "CCT-Q1",
        ict(2026, 3, 3, 14, 0),
        ict(2026, 3, 5, 14, 0),
    ),
    outgoing.closed(
        DOSSIER_ID,
        ict(2026, 3, 17, 11, 0),
        "result_ready",
        "late",
        ict(2026, 3, 18, 16, 0),
        DUE_AT,
        3,
    ),
    outgoing.closed(DOSSIER_ID, ict(2026, 3, 4, 14, 0), "withdrawn", None, DUE_AT, None, 1),
]

DEADLINE_PARAMS = [pytest.param(e, id=f"{e.type}-{i}") for i, e in enumerate(DEADLINE_EXAMPLES)]


def deadline_envelope(event: DeadlineEvent) -> Envelope:
    """As the tracker's adapter wraps an outgoing event."""
    return Envelope(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, event.dedup_key)),
        type=event.type,
        occurred_at=event.occurred_at,
        dossier_id=event.dossier_id,
        dossier_code=DOSSIER_CODE,
        agency_code=AGENCY,
        payload=event.payload,
    )


def deadline_example(event_type: str) -> DeadlineEvent:
    return next(e for e in DEADLINE_EXAMPLES if e.type == event_type)


def test_every_deadline_event_type_has_an_example() -> None:
    assert {e.type for e in DEADLINE_EXAMPLES} == set(DEADLINE_EVENTS)
    assert set(outgoing.DEADLINE_EVENT_TYPES) == set(DEADLINE_EVENTS)


CALENDAR_EXAMPLES: list[CalendarEnvelope] = [
    CalendarEnvelope(
        event_id="5d0c7c8e-2f3b-4f7e-9a51-0c6e1d2b3a47",
        type=CALENDAR_CHANGED,
        occurred_at=ict(2026, 2, 20, 10, 0),
        payload=CalendarChanged(
            day=date(2026, 4, 27),
            kind="day_off",
            overrides=[
                CalendarDay(day=date(2026, 4, 27), kind="day_off", note="Nghỉ bù Giỗ Tổ"),
                CalendarDay(day=date(2026, 5, 9), kind="workday", note="Làm bù ngày 27/4"),
            ],
        ),
    ),
    CalendarEnvelope(  # the override of 9 May removed
        event_id="8a1e4f2b-6c3d-4e5f-a7b8-9c0d1e2f3a4b",
        type=CALENDAR_CHANGED,
        occurred_at=ict(2026, 2, 21, 8, 0),
        payload=CalendarChanged(
            day=date(2026, 5, 9),
            kind=None,
            overrides=[CalendarDay(day=date(2026, 4, 27), kind="day_off")],
        ),
    ),
]

NOTIFICATION_EXAMPLES: list[tuple[str, Contract]] = [
    (
        "postal.ordered",
        PostalOrdered(
            reference=DOSSIER_CODE, tracking_code="EL123456789VN", at=ict(2026, 3, 17, 11, 5)
        ),
    ),
    (
        "postal.status_changed",
        PostalStatusChanged(
            tracking_code="EL123456789VN", status="delivered", at=ict(2026, 3, 18, 9, 30)
        ),
    ),
]

NOTIFICATION_PARAMS = [pytest.param(t, e, id=t) for t, e in NOTIFICATION_EXAMPLES]


def notification_envelope(event_type: str, event: Contract) -> Envelope:
    """As the notifier wraps a postal event: the standard envelope, keyed by dossier id."""
    return Envelope(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{DOSSIER_ID}/{event_type}")),
        type=event_type,
        occurred_at=ict(2026, 3, 18, 9, 31),
        dossier_id=DOSSIER_ID,
        dossier_code=DOSSIER_CODE,
        agency_code=AGENCY,
        payload=event.model_dump(mode="json"),
    )


DIRECTORY_EXAMPLE = DirectoryEnvelope(
    event_id="c3d4e5f6-0718-4293-a4b5-c6d7e8f90a1b",
    type=SUPERVISORS_CHANGED,
    occurred_at=ict(2026, 3, 1, 8, 0),
    payload=SupervisorsChanged(
        agency_code=AGENCY,
        agency_name="Ủy ban nhân dân Quận 1",
        supervisors=[
            Supervisor(
                id="7e57d004-2b97-4e7a-b45f-5387367791cd",
                name="Lê Minh Tuấn",
                phone="+84903123456",
                email="tuan.le@example.vn",
            ),
            Supervisor(
                id="1f0e9d8c-7b6a-4594-8372-615f4e3d2c1b", name="Phạm Thu", phone="+84987000111"
            ),
        ],
    ),
)

TOPIC_EVENTS: dict[str, Mapping[str, type[BaseModel]]] = {
    "motcua.dossier.v1": DOSSIER_EVENTS,
    "motcua.deadline.v1": DEADLINE_EVENTS,
    "motcua.notification.v1": NOTIFICATION_EVENTS,
    "motcua.calendar.v1": {CALENDAR_CHANGED: CalendarChanged},
    "motcua.directory.v1": {SUPERVISORS_CHANGED: SupervisorsChanged},
}


# -- (a) generated files are not stale -------------------------------------------------------


def test_generated_files_are_up_to_date() -> None:
    stale = generate.check()
    assert not stale, (
        "generated schema files are out of date with schemas/events.py or the HTTP routes: "
        f"{', '.join(stale)}. Run `python -m schemas.generate` and commit the result."
    )


def test_check_reports_stale_missing_and_extra_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    json_dir = tmp_path / "json"
    monkeypatch.setattr(generate, "JSON_DIR", json_dir)
    monkeypatch.setattr(generate, "ASYNCAPI_PATH", tmp_path / "asyncapi.yaml")
    monkeypatch.setattr(generate, "OPENAPI_PATH", tmp_path / "docs" / "openapi.json")
    envelopes = len(generate.ENVELOPE_FILE_STEMS)
    files = sum(len(events) for events in TOPIC_EVENTS.values()) + envelopes + 2  # + both APIs
    assert len(generate.check()) == files  # everything missing
    generate.write()
    assert generate.check() == []
    assert generate.main(["--check"]) == 0

    (json_dir / "dossier.started.v1.json").write_text("{}\n", encoding="utf-8")
    (json_dir / "envelope.v1.json").unlink()
    (json_dir / "dossier.obsolete.v1.json").write_text("{}\n", encoding="utf-8")
    problems = generate.check()
    assert sorted(Path(p).name for p in problems) == [
        "dossier.obsolete.v1.json",
        "dossier.started.v1.json",
        "envelope.v1.json",
    ]
    capsys.readouterr()
    assert generate.main(["--check"]) == 1
    assert "python -m schemas.generate" in capsys.readouterr().out

    assert generate.main([]) == 0
    assert generate.check() == []
    assert not (json_dir / "dossier.obsolete.v1.json").exists()


def test_the_openapi_document_is_what_motcua_up_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/openapi.json: the intake's API, the notifier's callbacks, the host's routes, this
    release; the same whatever the environment sets."""
    from services.core.runtime.version import motcua_version

    committed = json.loads(generate.OPENAPI_PATH.read_text(encoding="utf-8"))
    assert committed["info"]["version"] == motcua_version()
    assert {"/dossiers", "/public/dossiers/{code}", "/sms/receipts", "/readyz"} <= set(
        committed["paths"]
    )
    monkeypatch.setenv("MOTCUA_SMS_UNICODE", "true")
    monkeypatch.setenv("MOTCUA_MAX_BODY_BYTES", "10")
    assert generate.render_openapi(generate.openapi_document()) == generate.OPENAPI_PATH.read_text(
        encoding="utf-8"
    )


def test_generation_is_deterministic() -> None:
    assert generate.generated_files() == generate.generated_files()


def test_json_schema_files_have_ids_and_titles() -> None:
    events = {t: topic for topic, types in TOPIC_EVENTS.items() for t in types}
    envelopes = {"envelope.v1.json", "calendar-envelope.v1.json", "directory-envelope.v1.json"}
    names = envelopes | {f"{t}.v1.json" for t in events}
    assert {p.name for p in generate.JSON_DIR.iterdir()} == names
    for name in names:
        schema = load_json_schema(name)
        assert schema["$id"] == f"{generate.BASE_URL}{name}"
        assert schema["$id"].startswith("https://motcua.example/")
        assert schema["title"]
    for event_type, topic in events.items():
        schema = load_json_schema(f"{event_type}.v1.json")
        assert f'`type` is "{event_type}"' in schema["description"]
        assert f"published on {topic}" in schema["description"]
        assert schema["$comment"].endswith(f"Model: {TOPIC_EVENTS[topic][event_type].__name__}.")


@needs_validator
def test_json_schema_files_are_valid_json_schemas() -> None:
    for path in generate.JSON_DIR.iterdir():
        schema = load_json_schema(path.name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        if VALIDATOR_NAME == "jsonschema":
            import jsonschema

            jsonschema.Draft202012Validator.check_schema(schema)
        else:
            import jsonschema_rs

            assert jsonschema_rs.meta.is_valid(schema), path.name


# -- (b) round trip through the envelope, and the JSON Schema files ------------------------


@pytest.mark.parametrize(("event_type", "event"), EXAMPLE_PARAMS)
def test_event_round_trips_through_envelope_json(event_type: str, event: DossierEvent) -> None:
    raw = envelope_for(event_type, event).model_dump_json()

    assert "+07:00" in raw  # times keep their offset on the wire
    envelope = Envelope.model_validate_json(raw)
    assert envelope == envelope_for(event_type, event)
    assert envelope.type == event_type
    assert envelope.occurred_at.utcoffset() == timedelta(hours=7)

    payload = parse_payload(envelope)
    assert type(payload) is DOSSIER_EVENTS[event_type]
    assert payload == event
    assert payload.at.utcoffset() == timedelta(hours=7)
    assert Envelope.model_validate_json(envelope.model_dump_json()) == envelope


def test_vietnamese_text_survives_the_round_trip() -> None:
    event_type, event = EXAMPLES[0]
    raw = envelope_for(event_type, event).model_dump_json().encode("utf-8")
    payload = parse_payload(Envelope.model_validate_json(raw))
    assert isinstance(payload, DossierReceived)
    assert payload.applicant.full_name == "Nguyễn Thị Thu Hương"
    assert payload.return_address is not None
    assert payload.return_address.province == "Thành phố Hồ Chí Minh"


@needs_validator
@pytest.mark.parametrize(("event_type", "event"), EXAMPLE_PARAMS)
def test_example_validates_against_generated_json_schemas(
    event_type: str, event: DossierEvent
) -> None:
    wire = json.loads(envelope_for(event_type, event).model_dump_json())
    assert schema_errors(load_json_schema("envelope.v1.json"), wire) == []
    assert schema_errors(load_json_schema(f"{event_type}.v1.json"), wire["payload"]) == []


@needs_validator
@pytest.mark.parametrize(("event_type", "event"), EXAMPLE_PARAMS)
def test_example_validates_against_asyncapi_message(event_type: str, event: DossierEvent) -> None:
    schema = asyncapi_message_schema(load_asyncapi(), "dossier", event_type)
    wire = json.loads(envelope_for(event_type, event).model_dump_json())
    assert schema_errors(schema, wire) == []

    other = "dossier.returned" if event_type != "dossier.returned" else "dossier.resumed"
    assert schema_errors(schema, {**wire, "type": other}) != []


@needs_validator
def test_json_schema_rejects_what_pydantic_rejects() -> None:
    event_type, event = EXAMPLES[0]
    schema = load_json_schema(f"{event_type}.v1.json")
    payload = event.model_dump(mode="json")
    bad_payloads = [
        {**payload, "fee_vnd": 50_000},  # unknown field
        {k: v for k, v in payload.items() if k != "applicant"},  # missing field
        {**payload, "channel": "fax"},  # not an allowed value
        {**payload, "time_limit": {"value": 0, "unit": "working_days"}},  # below minimum
        {**payload, "status": "lost"},  # not a status
    ]
    for bad in bad_payloads:
        with pytest.raises(ValidationError):
            DossierReceived.model_validate(bad)
        assert schema_errors(schema, bad) != [], bad


# -- (b2) deadline events, as the tracker builds them ---------------------------------------


@pytest.mark.parametrize("event", DEADLINE_PARAMS)
def test_deadline_example_is_its_model_on_the_wire(event: DeadlineEvent) -> None:
    payload = DEADLINE_EVENTS[event.type].model_validate(event.payload)
    assert payload.model_dump(mode="json") == event.payload


@pytest.mark.parametrize("event", DEADLINE_PARAMS)
def test_deadline_event_round_trips_through_envelope_json(event: DeadlineEvent) -> None:
    raw = deadline_envelope(event).model_dump_json()

    assert "+07:00" in raw
    envelope = Envelope.model_validate_json(raw)
    assert envelope == deadline_envelope(event)
    payload = parse_deadline_payload(envelope)
    assert type(payload) is DEADLINE_EVENTS[event.type]
    assert json.loads(payload.model_dump_json()) == event.payload


@needs_validator
@pytest.mark.parametrize("event", DEADLINE_PARAMS)
def test_deadline_example_validates_against_generated_json_schemas(event: DeadlineEvent) -> None:
    wire = json.loads(deadline_envelope(event).model_dump_json())
    assert schema_errors(load_json_schema("envelope.v1.json"), wire) == []
    assert schema_errors(load_json_schema(f"{event.type}.v1.json"), wire["payload"]) == []


@needs_validator
@pytest.mark.parametrize("event", DEADLINE_PARAMS)
def test_deadline_example_validates_against_asyncapi_message(event: DeadlineEvent) -> None:
    schema = asyncapi_message_schema(load_asyncapi(), "deadline", event.type)
    wire = json.loads(deadline_envelope(event).model_dump_json())
    assert schema_errors(schema, wire) == []

    other = "deadline.changed" if event.type != "deadline.changed" else "deadline.closed"
    assert schema_errors(schema, {**wire, "type": other}) != []


BAD_DEADLINE_PAYLOADS = [
    pytest.param("deadline.closed", {"reason": "returned"}, id="closed-not-a-reason"),
    pytest.param("deadline.closed", {"outcome": "never"}, id="closed-not-an-outcome"),
    pytest.param("deadline.due_soon", {"due_at": "2026-03-09T09:15:00"}, id="naive-time"),
    pytest.param("deadline.overdue", {"overdue_working_minutes": -1}, id="below-minimum"),
    pytest.param("deadline.changed", {"version": 0}, id="version-0"),
    pytest.param("deadline.step_overdue", {"late_hours": 3}, id="unknown-field"),
    pytest.param("deadline.changed", {"due_at": ...}, id="missing-nullable-field"),
]


@pytest.mark.parametrize(("event_type", "change"), BAD_DEADLINE_PAYLOADS)
def test_deadline_models_and_json_schemas_reject_bad_payloads(
    event_type: str, change: dict[str, Any]
) -> None:
    merged = {**deadline_example(event_type).payload, **change}
    bad = {k: v for k, v in merged.items() if v is not ...}
    with pytest.raises(ValidationError):
        DEADLINE_EVENTS[event_type].model_validate(bad)
    if _validate is not None:
        assert schema_errors(load_json_schema(f"{event_type}.v1.json"), bad) != [], bad


# -- (b3) calendar events --------------------------------------------------------------------


@pytest.mark.parametrize("envelope", CALENDAR_EXAMPLES)
def test_calendar_envelope_round_trips_through_json(envelope: CalendarEnvelope) -> None:
    raw = envelope.model_dump_json()

    assert CalendarEnvelope.model_validate_json(raw) == envelope
    wire = json.loads(raw)
    assert wire["type"] == "calendar.changed"
    assert wire["payload"]["overrides"][0]["day"] == "2026-04-27"
    assert CalendarEnvelope.model_validate(wire) == envelope


def test_calendar_text_survives_the_round_trip() -> None:
    raw = CALENDAR_EXAMPLES[0].model_dump_json().encode("utf-8")
    assert CalendarEnvelope.model_validate_json(raw).payload.overrides[0].note == "Nghỉ bù Giỗ Tổ"


@needs_validator
@pytest.mark.parametrize("envelope", CALENDAR_EXAMPLES)
def test_calendar_example_validates_against_generated_schemas(envelope: CalendarEnvelope) -> None:
    wire = json.loads(envelope.model_dump_json())
    assert schema_errors(load_json_schema("calendar-envelope.v1.json"), wire) == []
    assert schema_errors(load_json_schema("calendar.changed.v1.json"), wire["payload"]) == []
    schema = asyncapi_message_schema(load_asyncapi(), "calendar", "calendar.changed")
    assert schema_errors(schema, wire) == []


def test_calendar_envelope_is_not_a_dossier_envelope() -> None:
    wire = json.loads(CALENDAR_EXAMPLES[0].model_dump_json())
    bad = [
        {**wire, "type": "calendar.deleted"},
        {**wire, "dossier_id": DOSSIER_ID},
        {**wire, "payload": {**wire["payload"], "kind": "holiday"}},
    ]
    for value in bad:
        with pytest.raises(ValidationError):
            CalendarEnvelope.model_validate(value)
        if _validate is not None:
            assert schema_errors(load_json_schema("calendar-envelope.v1.json"), value) != []
    with pytest.raises(ValidationError):
        Envelope.model_validate(wire)


# -- (b4) notification events (postal return) -----------------------------------------------


def test_every_notification_event_type_has_an_example() -> None:
    assert {t for t, _ in NOTIFICATION_EXAMPLES} == set(NOTIFICATION_EVENTS)


@pytest.mark.parametrize(("event_type", "event"), NOTIFICATION_PARAMS)
def test_notification_event_round_trips_through_envelope_json(
    event_type: str, event: Contract
) -> None:
    raw = notification_envelope(event_type, event).model_dump_json()

    assert "+07:00" in raw
    envelope = Envelope.model_validate_json(raw)
    payload = parse_notification_payload(envelope)
    assert type(payload) is NOTIFICATION_EVENTS[event_type]
    assert payload == event


def test_unknown_notification_type_is_a_key_error() -> None:
    envelope = notification_envelope(*NOTIFICATION_EXAMPLES[0]).model_copy(
        update={"type": "postal.lost"}
    )
    with pytest.raises(KeyError):
        parse_notification_payload(envelope)


@needs_validator
@pytest.mark.parametrize(("event_type", "event"), NOTIFICATION_PARAMS)
def test_notification_example_validates_against_generated_schemas(
    event_type: str, event: Contract
) -> None:
    wire = json.loads(notification_envelope(event_type, event).model_dump_json())
    assert schema_errors(load_json_schema("envelope.v1.json"), wire) == []
    assert schema_errors(load_json_schema(f"{event_type}.v1.json"), wire["payload"]) == []
    schema = asyncapi_message_schema(load_asyncapi(), "notification", event_type)
    assert schema_errors(schema, wire) == []
    other = next(t for t in NOTIFICATION_EVENTS if t != event_type)
    assert schema_errors(schema, {**wire, "type": other}) != []


BAD_NOTIFICATION_PAYLOADS = [
    pytest.param("postal.status_changed", {"status": "lost"}, id="not-a-status"),
    pytest.param("postal.status_changed", {"at": "2026-03-18T09:30:00"}, id="naive-time"),
    pytest.param("postal.status_changed", {"tracking_code": ...}, id="missing-tracking-code"),
    pytest.param("postal.ordered", {"reference": ...}, id="missing-reference"),
    pytest.param("postal.ordered", {"cod_amount": 0}, id="unknown-field"),
]


@pytest.mark.parametrize(("event_type", "change"), BAD_NOTIFICATION_PAYLOADS)
def test_notification_models_and_json_schemas_reject_bad_payloads(
    event_type: str, change: dict[str, Any]
) -> None:
    example = dict(NOTIFICATION_EXAMPLES)[event_type]
    merged = {**example.model_dump(mode="json"), **change}
    bad = {k: v for k, v in merged.items() if v is not ...}
    with pytest.raises(ValidationError):
        NOTIFICATION_EVENTS[event_type].model_validate(bad)
    if _validate is not None:
        assert schema_errors(load_json_schema(f"{event_type}.v1.json"), bad) != [], bad


# -- (b5) directory events (supervisors) -----------------------------------------------------


def test_directory_envelope_round_trips_through_json() -> None:
    raw = DIRECTORY_EXAMPLE.model_dump_json().encode("utf-8")

    envelope = DirectoryEnvelope.model_validate_json(raw)
    assert envelope == DIRECTORY_EXAMPLE
    assert envelope.payload.supervisors[0].name == "Lê Minh Tuấn"
    assert envelope.payload.supervisors[1].email is None
    assert json.loads(raw)["type"] == "directory.supervisors_changed"


@needs_validator
def test_directory_example_validates_against_generated_schemas() -> None:
    wire = json.loads(DIRECTORY_EXAMPLE.model_dump_json())
    assert schema_errors(load_json_schema("directory-envelope.v1.json"), wire) == []
    payload_schema = load_json_schema("directory.supervisors_changed.v1.json")
    assert schema_errors(payload_schema, wire["payload"]) == []
    schema = asyncapi_message_schema(load_asyncapi(), "directory", "directory.supervisors_changed")
    assert schema_errors(schema, wire) == []


def test_a_directory_record_from_before_agency_names_still_parses() -> None:
    """Records published before `agency_name` existed are on the topic still (and in the
    embedded broker's replay): they parse, with no name rather than an empty one."""
    wire = json.loads(DIRECTORY_EXAMPLE.model_dump_json())
    del wire["payload"]["agency_name"]
    envelope = DirectoryEnvelope.model_validate(wire)
    assert envelope.payload.agency_name is None
    assert [s.name for s in envelope.payload.supervisors] == ["Lê Minh Tuấn", "Phạm Thu"]
    if _validate is not None:
        assert schema_errors(load_json_schema("directory-envelope.v1.json"), wire) == []


def test_directory_envelope_is_strict() -> None:
    wire = json.loads(DIRECTORY_EXAMPLE.model_dump_json())
    supervisor = wire["payload"]["supervisors"][0]
    bad = [
        {**wire, "type": "directory.agency_renamed"},
        {**wire, "dossier_id": DOSSIER_ID},
        {**wire, "payload": {**wire["payload"], "supervisors": [{**supervisor, "role": "x"}]}},
        {**wire, "payload": {"agency_code": AGENCY}},
    ]
    for value in bad:
        with pytest.raises(ValidationError):
            DirectoryEnvelope.model_validate(value)
        if _validate is not None:
            assert schema_errors(load_json_schema("directory-envelope.v1.json"), value) != []
    with pytest.raises(ValidationError):
        Envelope.model_validate(wire)


# -- (c) AsyncAPI ----------------------------------------------------------------------------

TOPICS = (
    "motcua.dossier.v1",
    "motcua.deadline.v1",
    "motcua.notification.v1",
    "motcua.calendar.v1",
    "motcua.directory.v1",
)


def asyncapi_message_schema(doc: dict[str, Any], channel: str, message_id: str) -> dict[str, Any]:
    """The message payload, with #/components/... refs resolvable from its root."""
    message = resolve(doc, doc["channels"][channel]["messages"][message_id]["$ref"])
    return {"components": doc["components"], **message["payload"]}


def test_asyncapi_document_basics() -> None:
    doc = load_asyncapi()
    assert str(doc["asyncapi"]).startswith("3.")
    assert doc["info"]["title"] and doc["info"]["version"]
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == set(TOPICS) | {f"{t}.dlq" for t in TOPICS}
    for channel in doc["channels"].values():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]
        assert channel["messages"], channel["address"]


def test_asyncapi_topics_match_the_runtime() -> None:
    from services.core.runtime.kafka import ALL_TOPICS

    addresses = {c["address"] for c in load_asyncapi()["channels"].values()}
    assert addresses == set(ALL_TOPICS)


@pytest.mark.parametrize("address", TOPIC_EVENTS)
def test_every_event_is_a_message_of_its_channel(address: str) -> None:
    doc = load_asyncapi()
    events = TOPIC_EVENTS[address]
    (channel,) = [c for c in doc["channels"].values() if c["address"] == address]
    assert set(channel["messages"]) == set(events)
    for message_id, ref in channel["messages"].items():
        message = resolve(doc, ref["$ref"])
        narrowed = message["payload"]["allOf"][1]["properties"]
        assert narrowed["type"]["const"] == message_id == message["name"]
        payload_schema = resolve(doc, narrowed["payload"]["$ref"])
        assert payload_schema["title"] == events[message_id].__name__


def test_every_asyncapi_reference_resolves() -> None:
    doc = load_asyncapi()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    resolve(doc, value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(doc)


def test_every_message_is_keyed_as_the_runtime_keys_its_topic() -> None:
    from services.core.runtime.kafka import CALENDAR_KEY, CALENDAR_TOPIC, DIRECTORY_TOPIC

    doc = load_asyncapi()
    for channel in doc["channels"].values():
        for ref in channel["messages"].values():
            key = resolve(doc, ref["$ref"])["bindings"]["kafka"]["key"]
            assert key["type"] == "string", channel["address"]
            if channel["address"].startswith(CALENDAR_TOPIC):
                assert key["const"] == CALENDAR_KEY
            elif channel["address"].startswith(DIRECTORY_TOPIC):
                assert "agency code" in key["description"], channel["address"]
            else:
                assert "dossier id" in key["description"], channel["address"]
    for name, channel in doc["channels"].items():
        if channel["address"].endswith(".dlq"):
            (ref,) = channel["messages"].values()
            headers = resolve(doc, resolve(doc, ref["$ref"])["headers"]["$ref"])
            assert "error_class" in headers["required"], name


def test_asyncapi_operations() -> None:
    doc = load_asyncapi()
    seen = set()
    for operation in doc["operations"].values():
        address = resolve(doc, operation["channel"]["$ref"])["address"]
        (service,) = (t["name"] for t in operation["tags"])
        seen.add((service, operation["action"], address))
        channel_prefix = operation["channel"]["$ref"] + "/messages/"
        assert operation["messages"]
        assert all(m["$ref"].startswith(channel_prefix) for m in operation["messages"])
    expected = {
        ("intake", "send", "motcua.dossier.v1"),
        ("tracker", "receive", "motcua.dossier.v1"),
        ("notifier", "receive", "motcua.dossier.v1"),
        ("tracker", "send", "motcua.deadline.v1"),
        ("intake", "receive", "motcua.deadline.v1"),
        ("notifier", "receive", "motcua.deadline.v1"),
        ("notifier", "send", "motcua.notification.v1"),
        ("intake", "receive", "motcua.notification.v1"),
        ("intake", "send", "motcua.calendar.v1"),
        ("tracker", "receive", "motcua.calendar.v1"),
        ("intake", "send", "motcua.directory.v1"),
        ("notifier", "receive", "motcua.directory.v1"),
    }
    assert expected <= seen
    # dead letters are written by the consumers of the main topic
    for service, action, address in expected:
        if action == "receive":
            assert (service, "send", f"{address}.dlq") in seen


def test_deadline_operations_carry_every_deadline_message() -> None:
    doc = load_asyncapi()
    for name in ("tracker_send_deadline", "intake_receive_deadline", "notifier_receive_deadline"):
        refs = [m["$ref"] for m in doc["operations"][name]["messages"]]
        assert refs == [f"#/channels/deadline/messages/{t}" for t in DEADLINE_EVENTS], name


def test_notification_operations_carry_every_postal_message() -> None:
    doc = load_asyncapi()
    for name in ("notifier_send_notification", "intake_receive_notification"):
        refs = [m["$ref"] for m in doc["operations"][name]["messages"]]
        assert refs == [f"#/channels/notification/messages/{t}" for t in NOTIFICATION_EVENTS]
    assert "notification_event" not in doc["components"]["messages"]  # no placeholder left


class _RecordingBroker:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str, bytes | None, dict[str, str]]] = []

    async def publish(
        self, value: bytes, topic: str, *, key: bytes | None, headers: dict[str, str]
    ) -> None:
        self.sent.append((value, topic, key, headers))


def test_dead_letter_headers_are_those_the_consumer_writes() -> None:
    from services.core.runtime import consumer

    broker = _RecordingBroker()
    record = SimpleNamespace(
        topic="motcua.calendar.v1", partition=0, offset=7, key=b"calendar", value=b"{"
    )
    error = consumer.PoisonEvent("not a calendar event: 1 errors")
    asyncio.run(consumer.dead_letter(broker, record, error, "motcua-tracker-calendar", 1))  # type: ignore[arg-type]

    ((value, topic, key, headers),) = broker.sent
    assert (value, topic, key) == (b"{", "motcua.calendar.v1.dlq", b"calendar")
    schema = load_asyncapi()["components"]["schemas"]["DeadLetterHeaders"]
    assert set(headers) == set(schema["properties"]) == set(schema["required"])
    if _validate is not None:
        assert schema_errors(schema, headers) == []


# -- (d) the envelope is strict --------------------------------------------------------------


def _envelope_fields() -> dict[str, Any]:
    return json.loads(envelope_for(*EXAMPLES[2]).model_dump_json())  # type: ignore[no-any-return]


def test_envelope_rejects_unknown_field() -> None:
    with pytest.raises(ValidationError) as excinfo:
        Envelope.model_validate({**_envelope_fields(), "tenant": "hcm"})
    assert [(e["type"], e["loc"]) for e in excinfo.value.errors()] == [
        ("extra_forbidden", ("tenant",))
    ]


def test_envelope_requires_event_id() -> None:
    fields = _envelope_fields()
    del fields["event_id"]
    with pytest.raises(ValidationError) as excinfo:
        Envelope.model_validate(fields)
    assert [(e["type"], e["loc"]) for e in excinfo.value.errors()] == [("missing", ("event_id",))]


def test_envelope_version_defaults_to_1() -> None:
    fields = _envelope_fields()
    del fields["version"]
    assert Envelope.model_validate(fields).version == 1
