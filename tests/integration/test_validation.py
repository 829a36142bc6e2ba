"""Rejected requests: the status, the error naming the offending field, and nothing written.

Every rejection goes through `rejected`, which also compares the dossier and outbox tables
before and after the request.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

from services.intake.adapters import tables as t
from tests.fixtures.intake import IntakeHarness, dossier_body

ADDRESS = {"street": "12 Lê Lợi", "ward": "Bến Nghé", "district": "Quận 1", "province": "TP.HCM"}


CATALOGUE = (t.procedures, t.agencies, t.supervisors, t.calendar_overrides)


async def snapshot(intake: IntakeHarness) -> tuple[int, ...]:
    """Dossier rows, outbox rows, the sum of dossier versions (any action bumps it), and the
    rows of each catalogue table."""
    async with intake.service.engine.connect() as conn:
        count_dossiers = sa.select(sa.func.count()).select_from(t.dossiers)
        count_outbox = sa.select(sa.func.count()).select_from(t.outbox)
        versions = sa.select(sa.func.coalesce(sa.func.sum(t.dossiers.c.version), 0))
        catalogue = [sa.select(sa.func.count()).select_from(table) for table in CATALOGUE]
        return (
            (await conn.execute(count_dossiers)).scalar_one(),
            (await conn.execute(count_outbox)).scalar_one(),
            int((await conn.execute(versions)).scalar_one()),
            *[(await conn.execute(count)).scalar_one() for count in catalogue],
        )


async def rejected(
    intake: IntakeHarness,
    method: str,
    url: str,
    *,
    status: int,
    field: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **request: Any,
) -> dict[str, Any]:
    before = await snapshot(intake)
    r = await intake.client.request(method, url, headers=headers or intake.clerk, **request)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["field"] == field, error
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    assert await snapshot(intake) == before, "a rejected request wrote something"
    return error


def applicant(**kw: Any) -> dict[str, Any]:
    return {**dossier_body()["applicant"], **kw}


# --- the body itself ---------------------------------------------------------------------


async def test_malformed_json_is_400_naming_the_body(intake: IntakeHarness) -> None:
    await intake.procedure()
    headers = {**intake.clerk, "Content-Type": "application/json"}
    await rejected(
        intake, "POST", "/dossiers", status=400, field="body", code="malformed_json",
        headers=headers, content=b'{"procedure_code": "P1", ',
    )  # fmt: skip


async def test_a_body_that_is_not_utf8_is_400_like_bad_json(intake: IntakeHarness) -> None:
    await intake.procedure()
    headers = {**intake.clerk, "Content-Type": "application/json"}
    await rejected(
        intake, "POST", "/dossiers/UBND-Q1-20261116-0001/start", status=400, field="body",
        code="malformed_json", headers=headers, content=b"\xff\xfe{}",
    )  # fmt: skip


async def test_wrong_type_names_the_nested_field(intake: IntakeHarness) -> None:
    body = {
        "code": "P9",
        "name": "Đăng ký khai sinh",
        "agency_code": "UBND-Q1",
        "time_limit": {"value": "five", "unit": "working_days"},
    }
    error = await rejected(
        intake, "POST", "/procedures", json=body, headers=intake.admin,
        status=422, field="time_limit.value", code="validation_error",
    )  # fmt: skip
    assert error["details"][0]["field"] == "time_limit.value"


async def test_unknown_field_is_rejected_by_name(intake: IntakeHarness) -> None:
    await intake.procedure()
    await rejected(
        intake, "POST", "/dossiers", json={**dossier_body(), "nickname": "An"},
        status=422, field="nickname", code="validation_error",
    )  # fmt: skip
    await rejected(
        intake, "POST", "/dossiers", json=dossier_body(applicant=applicant(gender="nam")),
        status=422, field="applicant.gender",
    )  # fmt: skip


# --- the applicant -----------------------------------------------------------------------


async def test_over_long_name_is_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    await rejected(
        intake, "POST", "/dossiers", json=dossier_body(applicant=applicant(full_name="A" * 5000)),
        status=422, field="applicant.full_name", code="validation_error",
    )  # fmt: skip


async def test_invalid_phone_is_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    for phone in ("12345", "0212345678", "+1 650 253 0000"):
        await rejected(
            intake, "POST", "/dossiers", json=dossier_body(applicant=applicant(phone=phone)),
            status=422, field="applicant.phone", code="validation_error",
        )  # fmt: skip


async def test_cccd_must_be_twelve_digits(intake: IntakeHarness) -> None:
    await intake.procedure()
    for id_number in ("00120300456", "0012030045678", "00120300456A"):
        await rejected(
            intake, "POST", "/dossiers",
            json=dossier_body(applicant=applicant(id_number=id_number)),
            status=422, field="applicant.id_number", code="validation_error",
        )  # fmt: skip


async def test_the_papers_received_are_checked_one_by_one(intake: IntakeHarness) -> None:
    """documents: at most 50 papers, each a name of 1 to 200 characters without control
    characters and a number of copies from 1 to 99; the error names the paper and field."""
    await intake.procedure()
    paper = {"name": "Tờ khai đăng ký khai sinh", "copies": 1}
    for papers, field in (
        ([paper, {"name": "", "copies": 1}], "documents.1.name"),
        ([{"name": "   ", "copies": 1}], "documents.0.name"),
        ([{"name": "x" * 201, "copies": 1}], "documents.0.name"),
        ([{"name": "Tờ khai\x07", "copies": 1}], "documents.0.name"),
        ([{"name": "Tờ khai\nbản sao", "copies": 1}], "documents.0.name"),
        ([{"name": 12, "copies": 1}], "documents.0.name"),
        ([{"copies": 1}], "documents.0.name"),
        ([{"name": "Tờ khai", "copies": 0}], "documents.0.copies"),
        ([{"name": "Tờ khai", "copies": 100}], "documents.0.copies"),
        ([{"name": "Tờ khai", "copies": "2"}], "documents.0.copies"),
        ([{"name": "Tờ khai", "copies": 1.5}], "documents.0.copies"),
        ([{"name": "Tờ khai"}], "documents.0.copies"),
        ([{**paper, "pages": 3}], "documents.0.pages"),
        ([paper] * 51, "documents"),
        ({"name": "Tờ khai", "copies": 1}, "documents"),
    ):
        await rejected(
            intake, "POST", "/dossiers", json=dossier_body(documents=papers),
            status=422, field=field, code="validation_error",
        )  # fmt: skip
    papers = [{"name": f"Giấy tờ {n}", "copies": 99} for n in range(50)]
    r = await intake.client.post(
        "/dossiers", json=dossier_body(documents=papers), headers=intake.clerk
    )
    assert r.status_code == 201, r.text
    assert r.json()["documents"] == papers
    r = await intake.client.post("/dossiers", json=dossier_body(), headers=intake.clerk)
    assert r.json()["documents"] == []  # optional: none listed


async def test_legacy_eleven_digit_phone_is_accepted_and_modernised(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    body = await intake.dossier(applicant=applicant(phone="01662345678"))
    assert body["applicant"]["phone"] == "+84362345678"
    async with intake.service.engine.connect() as conn:
        stored = (
            await conn.execute(
                sa.select(t.dossiers.c.applicant_phone).where(t.dossiers.c.code == body["code"])
            )
        ).scalar_one()
    assert stored == "+84362345678"


# --- return by post, procedure, received_at ----------------------------------------------


async def test_postal_return_needs_an_address(intake: IntakeHarness) -> None:
    await intake.procedure(postal_return=True)
    await rejected(
        intake, "POST", "/dossiers", json=dossier_body(return_method="postal"),
        status=422, field="return_address", code="invalid_command",
    )  # fmt: skip


async def test_postal_return_only_where_the_procedure_offers_it(intake: IntakeHarness) -> None:
    await intake.procedure(postal_return=False)
    body = dossier_body(return_method="postal", return_address=ADDRESS)
    await rejected(
        intake, "POST", "/dossiers", json=body,
        status=422, field="return_method", code="invalid_command",
    )  # fmt: skip


async def test_unknown_procedure_is_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    await rejected(
        intake, "POST", "/dossiers", json=dossier_body(procedure_code="NO-SUCH"),
        status=422, field="procedure_code", code="invalid_command",
    )  # fmt: skip


async def test_received_at_in_the_future_is_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    await rejected(
        intake, "POST", "/dossiers", json=dossier_body(received_at="2026-11-16T10:00:00+07:00"),
        status=422, field="received_at", code="invalid_command",
    )  # fmt: skip


async def test_received_at_without_offset_is_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    await rejected(
        intake, "POST", "/dossiers", json=dossier_body(received_at="2026-11-16T08:00:00"),
        status=422, field="received_at", code="validation_error",
    )  # fmt: skip


async def test_received_at_out_of_any_plausible_range_is_422(intake: IntakeHarness) -> None:
    """Year 1 at +14:00 cannot even be converted to +07:00; it used to be a 500."""
    await intake.procedure()
    for when in ("0001-01-01T00:00:00+14:00", "1999-12-31T09:00:00+07:00"):
        await rejected(
            intake, "POST", "/dossiers", json=dossier_body(received_at=when),
            status=422, field="received_at", code="validation_error",
        )  # fmt: skip


# --- actions -----------------------------------------------------------------------------


async def test_action_before_the_last_action_is_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()  # received at 09:00
    await rejected(
        intake, "POST", f"/dossiers/{d['code']}/start", json={"at": "2026-11-16T08:30:00+07:00"},
        status=422, field="at", code="invalid_command",
    )  # fmt: skip
    intake.clock.advance(hours=2)
    r = await intake.client.post(
        f"/dossiers/{d['code']}/start", json={"at": "2026-11-16T10:00:00+07:00"},
        headers=intake.clerk,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    await rejected(
        intake, "POST", f"/dossiers/{d['code']}/pause",
        json={"reason": "chờ xác minh", "at": "2026-11-16T09:30:00+07:00"},
        status=422, field="at", code="invalid_command",
    )  # fmt: skip


async def test_extend_must_move_the_appointment_later(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    url = f"/dossiers/{d['code']}/extend"
    for new_due_at in (d["due_at"], "2026-11-20T09:00:00+07:00"):
        await rejected(
            intake, "POST", url, json={"new_due_at": new_due_at, "reason": "cần thẩm định"},
            status=422, field="new_due_at", code="invalid_command",
        )  # fmt: skip


async def test_extend_is_allowed_once_then_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    url = f"/dossiers/{d['code']}/extend"
    first = {"new_due_at": "2026-11-30T09:00:00+07:00", "reason": "cần thẩm định"}
    r = await intake.client.post(url, json=first, headers=intake.clerk)
    assert r.status_code == 200, r.text
    assert r.json()["original_due_at"] is not None
    second = {"new_due_at": "2026-12-07T09:00:00+07:00", "reason": "lại chậm"}
    error = await rejected(
        intake, "POST", url, json=second, status=422, field="new_due_at", code="invalid_command"
    )
    assert "once" in error["message"]


async def test_extend_to_an_absurd_date_is_422(intake: IntakeHarness) -> None:
    """9999-12-31 at -12:00 overflows on conversion; it used to be a 500."""
    await intake.procedure()
    d = await intake.dossier()
    for new_due_at in ("9999-12-31T23:59:59-12:00", "2100-01-02T09:00:00+07:00"):
        await rejected(
            intake, "POST", f"/dossiers/{d['code']}/extend",
            json={"new_due_at": new_due_at, "reason": "x"},
            status=422, field="new_due_at", code="validation_error",
        )  # fmt: skip


async def test_forbidden_transition_is_409_naming_the_status(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    await rejected(
        intake, "POST", f"/dossiers/{d['code']}/resume", json={},
        status=409, field="status", code="forbidden_transition",
    )  # fmt: skip


# --- catalogue and listing ---------------------------------------------------------------


async def test_cutoff_time_must_be_a_clock_time(intake: IntakeHarness) -> None:
    for cutoff in ("25:00", "15h00", "9:00"):
        body = {
            "code": "P9",
            "name": "Đăng ký khai sinh",
            "agency_code": "UBND-Q1",
            "time_limit": {"value": 5, "unit": "working_days"},
            "cutoff_time": cutoff,
        }
        await rejected(
            intake, "POST", "/procedures", json=body, headers=intake.admin,
            status=422, field="cutoff_time", code="validation_error",
        )  # fmt: skip
    r = await intake.client.get("/procedures", headers=intake.admin)
    assert r.json() == []


async def test_bad_office_schedule_is_422(intake: IntakeHarness) -> None:
    bad_schedules: list[Any] = [
        {"week": {"9": [["08:00", "12:00"]]}},
        {"week": {"0": [["12:00", "08:00"]]}},
        {"week": {"0": [["08:00", "25:00"]]}},
        {"week": {"0": [["08:00", "12:00"], ["11:00", "17:00"]]}},
        {"days": {}},
        {"week": {}},  # no office hours at all: every deadline would fail after seconds
        {"week": {"0": [["08:00", "08:01"]]}},
    ]
    for schedule in bad_schedules:
        await rejected(
            intake, "PUT", "/agencies/UBND-Q1",
            json={"name": "UBND Quận 1", "office_schedule": schedule}, headers=intake.admin,
            status=422, field="office_schedule", code="validation_error",
        )  # fmt: skip
    await rejected(
        intake, "PUT", "/agencies/UBND-Q1",
        json={"name": "UBND Quận 1", "office_schedule": "always"}, headers=intake.admin,
        status=422, field="office_schedule", code="validation_error",
    )  # fmt: skip
    good = {"week": {"0": [["07:30", "11:30"]], "2": [["07:30", "11:30"]]}}
    r = await intake.client.put(
        "/agencies/UBND-Q1", json={"name": "UBND Quận 1", "office_schedule": good},
        headers=intake.admin,
    )  # fmt: skip
    assert r.status_code == 200, r.text


async def test_cursor_we_never_issued_is_422(intake: IntakeHarness) -> None:
    """A cursor decoding to a number beyond BIGINT used to be a 500."""
    for raw in (b"9" * 30, b"abc", b"\xff\xfe"):
        cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        await rejected(
            intake, "GET", "/dossiers", params={"cursor": cursor}, headers=intake.admin,
            status=422, field="cursor", code="validation_error",
        )  # fmt: skip


async def test_a_cursor_mangled_in_copying_is_422_not_another_page(intake: IntakeHarness) -> None:
    """base64 decoding skips what is not base64: "MTA%3" (a bad percent-encoding of the
    cursor "MTA3") used to be read as that cursor. Only the exact text we issued is one."""
    issued = base64.urlsafe_b64encode(b"107").decode().rstrip("=")
    assert issued == "MTA3"
    for cursor in ("MTA%3", "MTA 3", "MT\nA3", "MTA3=", " MTA3"):
        await rejected(
            intake, "GET", "/dossiers", params={"cursor": cursor}, headers=intake.admin,
            status=422, field="cursor", code="validation_error",
        )  # fmt: skip
    r = await intake.client.get("/dossiers", params={"cursor": issued}, headers=intake.admin)
    assert r.status_code == 200, r.text


async def test_nothing_is_written_by_a_run_of_bad_requests(intake: IntakeHarness) -> None:
    """The tables are the same after a batch of bad receipts and actions as before."""
    await intake.procedure()
    d = await intake.dossier()
    before = await snapshot(intake)
    assert before[0] == 1 and before[1] >= 1
    bad = [
        ("/dossiers", dossier_body(applicant=applicant(phone="12345"))),
        ("/dossiers", dossier_body(procedure_code="NOPE")),
        ("/dossiers", dossier_body(return_method="postal")),
        ("/dossiers", dossier_body(received_at="2030-01-01T00:00:00+07:00")),
        (f"/dossiers/{d['code']}/return", {}),
        (f"/dossiers/{d['code']}/extend", {"new_due_at": d["due_at"], "reason": "x"}),
        (f"/dossiers/{d['code']}/start", {"at": "2026-11-15T09:00:00+07:00"}),
    ]
    for url, body in bad:
        r = await intake.client.post(url, json=body, headers=intake.clerk)
        assert r.status_code in (409, 422), (url, r.text)
    assert await snapshot(intake) == before


# --- control characters ------------------------------------------------------------------

# C0 controls, DEL, C1 controls, bidirectional overrides, embeddings and isolates.
CONTROLS = ["\x00", "\x01", "\x1b", "\x7f", "\x85", "\x9f", "\u202a", "\u202e", "\u2066", "\u2069"]
# Allowed in free text (a reason, a missing item, a note), not in a name or a code.
LINE_BREAKS = ["\t", "\n"]


def assert_names_the_character(error: dict[str, Any], char: str) -> None:
    assert f"U+{ord(char):04X}" in error["message"], error


async def test_a_control_character_in_a_name_is_422_naming_the_field(
    intake: IntakeHarness,
) -> None:
    """A NUL in the applicant's name used to be stored, then block every SMS of the dossier."""
    await intake.procedure()
    for char in CONTROLS + LINE_BREAKS:
        body = dossier_body(applicant=applicant(full_name=f"Nguyễn{char}Văn An"))
        error = await rejected(
            intake, "POST", "/dossiers", json=body,
            status=422, field="applicant.full_name", code="validation_error",
        )  # fmt: skip
        assert_names_the_character(error, char)


async def test_control_characters_are_refused_in_every_string_of_a_receipt(
    intake: IntakeHarness,
) -> None:
    await intake.procedure(postal_return=True)
    address = {**ADDRESS, "ward": "Bến\x00Nghé"}
    cases: list[tuple[dict[str, Any], str]] = [
        (dossier_body(applicant=applicant(phone="0912345678\x00")), "applicant.phone"),
        (dossier_body(applicant=applicant(email="an@example.vn\u202e")), "applicant.email"),
        (dossier_body(applicant=applicant(id_number="00120300456\x00")), "applicant.id_number"),
        (dossier_body(return_method="postal", return_address=address), "return_address.ward"),
        (dossier_body(procedure_code="P1\x00"), "procedure_code"),
        (dossier_body(channel="counter\x00"), "channel"),
    ]
    for body, field in cases:
        await rejected(
            intake, "POST", "/dossiers", json=body, status=422, field=field,
            code="validation_error",
        )  # fmt: skip


async def test_free_text_takes_tabs_and_newlines_but_no_other_control(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    d = await intake.dossier()
    url = f"/dossiers/{d['code']}/request-supplement"
    for char in CONTROLS + ["\r", "\x0b", "\x0c"]:
        error = await rejected(
            intake, "POST", url, json={"items": ["Sổ đỏ", f"Bản sao{char}CCCD"], "reason": "thiếu"},
            status=422, field="items", code="validation_error",
        )  # fmt: skip
        assert_names_the_character(error, char)
        await rejected(
            intake, "POST", url, json={"items": ["Sổ đỏ"], "reason": f"thiếu{char}giấy"},
            status=422, field="reason", code="validation_error",
        )  # fmt: skip
    body = {"items": ["Sổ đỏ\tbản chính", "CCCD"], "reason": "Thiếu giấy tờ:\n- sổ đỏ"}
    r = await intake.client.post(url, json=body, headers=intake.clerk)
    assert r.status_code == 200, r.text
    assert r.json()["history"][-1]["details"]["items"] == ["Sổ đỏ\tbản chính", "CCCD"]


async def test_control_characters_are_refused_in_the_catalogue(intake: IntakeHarness) -> None:
    admin = intake.admin
    procedure = {
        "code": "P9", "name": "Đăng ký\x00khai sinh", "agency_code": "UBND-Q1",
        "time_limit": {"value": 5, "unit": "working_days"},
    }  # fmt: skip
    await rejected(
        intake, "POST", "/procedures", json=procedure, headers=admin,
        status=422, field="name", code="validation_error",
    )  # fmt: skip
    await rejected(
        intake, "PUT", "/agencies/UBND-Q1", json={"name": "UBND\u202eQ1"}, headers=admin,
        status=422, field="name", code="validation_error",
    )  # fmt: skip
    schedule = {"week": {"0": [["08:00\x00", "12:00"]]}}
    await rejected(
        intake, "PUT", "/agencies/UBND-Q1", json={"name": "UBND Q1", "office_schedule": schedule},
        headers=admin, status=422, field="office_schedule", code="validation_error",
    )  # fmt: skip
    await rejected(
        intake, "POST", "/agencies/UBND-Q1/supervisors", json={"name": "Ông\x1bMinh",
        "phone": "0903123456"}, headers=admin,
        status=422, field="name", code="validation_error",
    )  # fmt: skip
    await rejected(
        intake, "PUT", "/calendar/overrides/2026-12-31",
        json={"kind": "day_off", "note": "Nghỉ\x00bù"}, headers=admin,
        status=422, field="note", code="validation_error",
    )  # fmt: skip


async def test_a_control_character_in_a_path_parameter_is_422_naming_it(
    intake: IntakeHarness,
) -> None:
    """On PostgreSQL a NUL in the code reached the query and came back as a 500."""
    await intake.procedure()
    d = await intake.dossier()
    for char in CONTROLS:
        code = quote(f"{d['code']}{char}")
        phone = {"phone": "0912345678"}
        for method, url, kw in [
            ("GET", f"/public/dossiers/{code}", {"params": phone, "headers": {}}),
            ("GET", f"/dossiers/{code}", {}),
            ("POST", f"/dossiers/{code}/start", {}),
            ("PUT", f"/agencies/{quote('UBND' + char)}", {"json": {"name": "x"}}),
        ]:
            error = await rejected(
                intake, method, url, status=422, code="validation_error",
                field="agency_code" if "agencies" in url else "code", **kw,
            )  # fmt: skip
            assert_names_the_character(error, char)


async def test_a_control_character_in_a_query_parameter_is_422_naming_it(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    await intake.dossier()
    for char in CONTROLS:
        for path, params, headers in [
            ("/dossiers", {"agency": f"UBND-Q1{char}"}, intake.admin),
            ("/dossiers", {"cursor": f"MQ{char}"}, intake.admin),
            ("/public/dossiers/UBND-Q1-20261116-0001", {"phone": f"0912345678{char}"}, {}),
            ("/reports/on-time", {"agency": f"UBND-Q1{char}"}, intake.admin),
        ]:
            field = next(iter(params))
            error = await rejected(
                intake, "GET", path, params=params, headers=headers,
                status=422, field=field, code="validation_error",
            )  # fmt: skip
            assert_names_the_character(error, char)
    # A parameter's name is named escaped, as it could not be shown otherwise.
    await rejected(
        intake, "GET", "/dossiers", params={"agency\x00": "UBND-Q1"}, headers=intake.admin,
        status=422, field="agency\\x00", code="validation_error",
    )  # fmt: skip


# --- strict types and canonical forms ----------------------------------------------------


def procedure_body(**kw: Any) -> dict[str, Any]:
    return {
        "code": "P9", "name": "Đăng ký khai sinh", "agency_code": "UBND-Q1",
        "time_limit": {"value": 5, "unit": "working_days"}, **kw,
    }  # fmt: skip


async def test_numbers_and_flags_must_be_json_numbers_and_booleans(intake: IntakeHarness) -> None:
    """true is not 1, "10" is not 10, 10.0 is not 10, "yes" is not true."""
    for value in (True, "10", 10.0, "5"):
        await rejected(
            intake, "POST", "/procedures", headers=intake.admin,
            json=procedure_body(time_limit={"value": value, "unit": "working_days"}),
            status=422, field="time_limit.value", code="validation_error",
        )  # fmt: skip
    for flag in ("yes", "true", 1, 0):
        await rejected(
            intake, "POST", "/procedures", headers=intake.admin,
            json=procedure_body(postal_return=flag),
            status=422, field="postal_return", code="validation_error",
        )  # fmt: skip
    await intake.procedure()
    await intake.agency("STNMT")
    d = await intake.dossier()
    for hours in (True, "8", 8.0):
        await rejected(
            intake, "POST", f"/dossiers/{d['code']}/transfer",
            json={"to_agency": "STNMT", "allotted_hours": hours},
            status=422, field="allotted_hours", code="validation_error",
        )  # fmt: skip


async def test_cccd_is_twelve_ascii_digits_not_all_zeros(intake: IntakeHarness) -> None:
    """str.isdigit() and a Unicode \\d take full-width and other scripts' digits."""
    await intake.procedure()
    for id_number in (
        "００１２０３００４５６７",  # full-width
        "٠٠١٢٠٣٠٠٤٥٦٧",  # Arabic-Indic
        "00120300456৭",  # one Bengali digit
        "000000000000",
        " 001203004567",
    ):
        await rejected(
            intake, "POST", "/dossiers",
            json=dossier_body(applicant=applicant(id_number=id_number)),
            status=422, field="applicant.id_number", code="validation_error",
        )  # fmt: skip
    d = await intake.dossier(applicant=applicant(id_number="079301001234"))
    assert d["applicant"]["id_number"] == "079301001234"


async def test_times_are_iso_8601_not_unix_time(intake: IntakeHarness) -> None:
    await intake.procedure()
    for when in ("1700000000", 1700000000, 1700000000.5, "2026-11-16", "16/11/2026 08:00"):
        await rejected(
            intake, "POST", "/dossiers", json=dossier_body(received_at=when),
            status=422, field="received_at", code="validation_error",
        )  # fmt: skip
    d = await intake.dossier(received_at="2026-11-16T08:00:00+07:00")
    assert d["received_at"] == "2026-11-16T08:00:00+07:00"
    await rejected(
        intake, "POST", f"/dossiers/{d['code']}/start", json={"at": "1763254800"},
        status=422, field="at", code="validation_error",
    )  # fmt: skip
    await rejected(
        intake, "POST", f"/dossiers/{d['code']}/extend",
        json={"new_due_at": 1800000000, "reason": "x"},
        status=422, field="new_due_at", code="validation_error",
    )  # fmt: skip


async def test_cutoff_time_takes_ascii_digits_only(intake: IntakeHarness) -> None:
    for cutoff in ("1٥:00", "１５:００"):
        await rejected(
            intake, "POST", "/procedures", json=procedure_body(cutoff_time=cutoff),
            headers=intake.admin, status=422, field="cutoff_time", code="validation_error",
        )  # fmt: skip


async def test_codes_are_unique_whatever_their_case(intake: IntakeHarness) -> None:
    await intake.procedure(code="DD-01", agency="VPDK-Q1")
    error = await rejected(
        intake, "POST", "/procedures", headers=intake.admin,
        json=procedure_body(code="dd-01", agency_code="VPDK-Q1"),
        status=409, field="code", code="already_exists",
    )  # fmt: skip
    assert "DD-01" in error["message"], error
    for method, url, body, field in [
        ("POST", "/procedures", procedure_body(agency_code="vpdk-q1"), "agency_code"),
        ("PUT", "/agencies/vpdk-q1", {"name": "VPĐK Q1"}, "agency_code"),
        ("POST", "/agencies/Vpdk-Q1/supervisors", {"name": "Minh", "phone": "0903123456"},
         "agency_code"),
    ]:  # fmt: skip
        error = await rejected(
            intake, method, url, json=body, headers=intake.admin,
            status=409, field=field, code="already_exists",
        )  # fmt: skip
        assert "VPDK-Q1" in error["message"], error
    # The agency's own spelling still works.
    r = await intake.client.put("/agencies/VPDK-Q1", json={"name": "VPĐK Q1"}, headers=intake.admin)
    assert r.status_code == 200, r.text


async def test_the_database_itself_keeps_codes_unique_whatever_their_case(
    intake: IntakeHarness,
) -> None:
    """The index behind the check above, for two admins creating VPDK-Q1 and vpdk-q1 at once."""
    await intake.procedure(code="DD-01", agency="VPDK-Q1")
    now = intake.clock()
    for table, row in [
        (t.agencies, {"code": "vpdk-q1", "name": "x", "office_schedule": {}, "created_at": now}),
        (t.procedures, {"code": "dd-01", "name": "x", "agency_code": "VPDK-Q1",
                        "time_limit_value": 1, "time_limit_unit": "working_days",
                        "postal_return": False, "created_at": now}),
    ]:  # fmt: skip
        with pytest.raises(sa.exc.IntegrityError):
            async with intake.service.engine.begin() as conn:
                await conn.execute(table.insert().values(**row))


async def test_a_transfer_to_an_unknown_agency_is_422(intake: IntakeHarness) -> None:
    await intake.procedure()
    await intake.agency("STNMT")
    d = await intake.dossier()
    for agency in ("NO-SUCH", "stnmt"):
        await rejected(
            intake, "POST", f"/dossiers/{d['code']}/transfer", json={"to_agency": agency},
            status=422, field="to_agency", code="invalid_command",
        )  # fmt: skip
    r = await intake.client.post(
        f"/dossiers/{d['code']}/transfer", json={"to_agency": "STNMT"}, headers=intake.clerk
    )
    assert r.status_code == 200, r.text


async def test_calendar_override_days_are_iso_dates_from_2000_to_2099(
    intake: IntakeHarness,
) -> None:
    """The tracker's calendar covers 2000–2099: a day outside it was dead-lettered there."""
    for day in ("1999-12-31", "2100-01-01", "0001-01-01", "9999-12-31", "20261231", "1700000000"):
        for method in ("PUT", "DELETE"):
            await rejected(
                intake, method, f"/calendar/overrides/{day}", headers=intake.admin,
                json={"kind": "day_off"} if method == "PUT" else None,
                status=422, field="day", code="validation_error",
            )  # fmt: skip
    for day in ("2000-01-01", "2099-12-31"):
        r = await intake.client.put(
            f"/calendar/overrides/{day}", json={"kind": "workday"}, headers=intake.admin
        )
        assert r.status_code == 200, r.text
