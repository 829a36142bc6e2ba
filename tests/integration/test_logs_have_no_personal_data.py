"""A full request cycle at DEBUG in JSON: every line parses, and no personal data is in any.

Personal data (DESIGN: Decree 13/2023 on personal data protection) is the applicant's name,
phone in any spelling, CCCD number, e-mail and street address.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import structlog

from services.core.runtime.logging import configure_logging
from tests.fixtures.intake import IntakeHarness, dossier_body
from tests.fixtures.notifier import NotifierHarness

NAME = "Trần Thị Bích Ngọc"
PHONE = "0912345678"
CCCD = "079301012345"
EMAIL = "bich.ngoc.tran@example.vn"
STREET = "48 Nguyễn Đình Chiểu"
PERSONAL = [
    NAME,
    "Bích Ngọc",
    "bích ngọc",
    "Tran Thi Bich Ngoc",
    PHONE,
    "+84912345678",
    "84912345678",
    "912345678",
    "091 234 5678",
    "0912 345 678",
    CCCD,
    EMAIL,
    "bich.ngoc.tran",
    STREET,
    "Nguyễn Đình Chiểu",
]


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The production set-up at DEBUG in JSON, writing to a buffer instead of stderr."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logger.level for name, logger in _loggers()}
    buffer = io.StringIO()
    configure_logging("DEBUG", "json", stream=buffer)
    # Not caching loggers on first use keeps this set-up from outliving the test.
    structlog.configure(cache_logger_on_first_use=False)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, logger in _loggers():
            logger.setLevel(saved_levels.get(name, logging.NOTSET))


def _loggers() -> list[tuple[str, logging.Logger]]:
    return [
        (name, logger)
        for name, logger in list(logging.root.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
    ]


async def _full_cycle(intake: IntakeHarness) -> dict[str, int]:
    """Receipt, actions, a bad request, a 409, public lookups, a listing. Returns statuses."""
    client, clerk = intake.client, intake.clerk
    statuses: dict[str, int] = {}
    await intake.procedure(postal_return=True)
    applicant = {"full_name": NAME, "phone": PHONE, "id_number": CCCD, "email": EMAIL}
    address = {"street": STREET, "ward": "Phường 5", "district": "Quận 3", "province": "TP.HCM"}
    body = dossier_body(applicant=applicant, return_method="postal", return_address=address)
    r = await client.post("/dossiers", json=body, headers={**clerk, "Idempotency-Key": "k-1"})
    assert r.status_code == 201, r.text
    dossier = r.json()
    code = dossier["code"]
    retry = await client.post("/dossiers", json=body, headers={**clerk, "Idempotency-Key": "k-1"})
    assert retry.json()["id"] == dossier["id"]

    steps: list[tuple[str, dict[str, Any]]] = [
        ("start", {"unit": "Phòng Quản lý đô thị"}),
        ("request-supplement", {"items": [f"Bản sao CCCD {CCCD}"], "reason": f"gọi {PHONE}"}),
        ("receive-supplement", {}),
        ("pause", {"reason": f"chờ {NAME} xác nhận"}),
        ("resume", {}),
        ("extend", {"new_due_at": "2026-12-31T16:00:00+07:00", "reason": "thẩm định thêm"}),
        ("complete", {}),
    ]
    for action, payload in steps:
        intake.clock.advance(minutes=30)
        r = await client.post(f"/dossiers/{code}/{action}", json=payload, headers=clerk)
        assert r.status_code == 200, (action, r.text)

    bad = dossier_body(applicant={**applicant, "phone": f"{PHONE}9"})
    r = await client.post("/dossiers", json=bad, headers=clerk)
    statuses["bad_phone"] = r.status_code
    r = await client.post(
        "/dossiers",
        content=f'{{"applicant": {{"full_name": "{NAME}", "phone": "{PHONE}"'.encode(),
        headers={**clerk, "Content-Type": "application/json"},
    )
    statuses["malformed"] = r.status_code
    r = await client.post(f"/dossiers/{code}/start", json={}, headers=clerk)
    statuses["conflict"] = r.status_code

    for phone in (PHONE, "+84912345678", "912345678"):
        r = await client.get(f"/public/dossiers/{code}?phone={quote(phone)}")
        statuses[f"lookup {phone}"] = r.status_code
    r = await client.get("/dossiers", params={"agency": "UBND-Q1"}, headers=clerk)
    assert r.status_code == 200 and r.json()["items"][0]["applicant"]["full_name"] == NAME
    return statuses


async def test_logs_are_json_without_personal_data(
    intake: IntakeHarness, log_lines: io.StringIO
) -> None:
    statuses = await _full_cycle(intake)
    assert statuses["bad_phone"] == 422
    assert statuses["malformed"] == 400
    assert statuses["conflict"] == 409
    assert statuses[f"lookup {PHONE}"] == 200
    assert statuses["lookup +84912345678"] == 200

    text = log_lines.getvalue()
    lines = text.splitlines()
    assert lines, "nothing was logged"
    events = []
    for line in lines:
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(event, dict), line
        events.append(event)

    # JSONRenderer escapes non-ASCII ("Tr\\u1ea7n"): search the decoded values as well.
    decoded = "\n".join(json.dumps(e, ensure_ascii=False) for e in events)
    for haystack in (text, decoded, decoded.lower()):
        for value in PERSONAL:
            assert value not in haystack, f"{value!r} is in the log"

    # The log is about the requests, so it could have leaked them: one line per request.
    requests = [e for e in events if e.get("event") == "http_request"]
    seen = {(e["method"], e["route"], e["status"]) for e in requests}
    assert ("POST", "/dossiers", 201) in seen
    assert ("POST", "/dossiers", 422) in seen
    assert ("POST", "/dossiers/{code}/start", 409) in seen
    assert ("GET", "/public/dossiers/{code}", 200) in seen
    assert ("GET", "/dossiers", 200) in seen
    assert all(e.get("level") for e in events)


async def test_the_notifier_logs_no_personal_data(
    notifier: NotifierHarness, log_lines: io.StringIO
) -> None:
    """The same cycle told to the citizen and the supervisors: SMS, a gateway refusal, a
    postal order and its return to sender, receipts."""
    await notifier.supervisors(phones=("0901000001",))
    notifier.sms.reject_next(400, "invalid_number")
    await _full_cycle(notifier.intake)
    await notifier.feed()
    await notifier.dispatch()
    await notifier.dispatch()  # the SMS with the tracking code
    (order,) = notifier.postal.orders.values()
    for status in ("in_transit", "returned"):
        r = await notifier.client.post(
            "/postal/callbacks", json={"tracking_code": order["tracking_code"], "status": status}
        )
        assert r.status_code == 202
    await notifier.dispatch()
    for message in notifier.sms.messages.values():
        r = await notifier.client.post(
            "/sms/receipts", json={"message_id": message["message_id"], "status": "delivered"}
        )
        assert r.status_code == 202
    assert len(notifier.sms.messages) >= 5

    decoded = "\n".join(
        json.dumps(json.loads(x), ensure_ascii=False) for x in log_lines.getvalue().splitlines()
    )
    assert '"notice_decided"' in decoded and '"sms_attempt"' in decoded
    for value in [*PERSONAL, "0901000001", "+84901000001", STREET]:
        assert value not in decoded and value.lower() not in decoded.lower(), value
