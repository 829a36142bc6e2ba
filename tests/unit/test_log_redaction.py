"""redact_personal_data: personal data goes by key name and by value shape; codes and ids stay."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.core.runtime.logging import (
    REDACTED,
    redact_personal_data,
    redact_shapes,
    redact_text,
)


def redact(**event: Any) -> dict[str, Any]:
    return dict(redact_personal_data(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key", ["phone", "full_name", "name", "id_number", "email", "applicant", "street", "to"]
)
def test_personal_keys_are_redacted_whatever_the_value(key: str) -> None:
    assert redact(event="x", **{key: "Nguyễn Văn An"})[key] == REDACTED
    assert redact(event="x", **{key: {"anything": 1}})[key] == REDACTED


def test_personal_keys_are_redacted_inside_nested_values() -> None:
    out = redact(
        event="sms_queued",
        request={"to": "+84912345678", "text": "Kính gửi ông An", "request_id": "n-1"},
        items=[{"full_name": "Trần Thị Bích", "dossier_code": "UBND-Q1-20261116-0001"}],
    )
    assert out["request"] == {"to": REDACTED, "text": REDACTED, "request_id": "n-1"}
    assert out["items"] == [{"full_name": REDACTED, "dossier_code": "UBND-Q1-20261116-0001"}]
    assert "Bích" not in repr(out) and "An" not in repr(out["request"])


@pytest.mark.parametrize(
    "phone", ["0912345678", "+84912345678", "84912345678", "0362345678", "01662345678"]
)
def test_a_phone_in_free_text_is_redacted(phone: str) -> None:
    text = f"khách hàng gọi {phone}, hẹn lại"
    assert redact_text(text) == f"khách hàng gọi {REDACTED}, hẹn lại"
    assert redact(event="note", note=text)["note"] == f"khách hàng gọi {REDACTED}, hẹn lại"


def test_a_twelve_digit_cccd_in_free_text_is_redacted() -> None:
    out = redact(event="bổ sung bản sao CCCD 079301012345 và 001203004567")
    assert out["event"] == f"bổ sung bản sao CCCD {REDACTED} và {REDACTED}"


def test_an_email_in_free_text_is_redacted() -> None:
    assert redact_text("gửi tới bich.ngoc@example.vn nhé") == f"gửi tới {REDACTED} nhé"


def test_a_phone_inside_a_url_is_redacted() -> None:
    url = "GET /public/dossiers/UBND-Q1-20261116-0001?phone=%2B84912345678"
    assert redact_text(url) == f"GET /public/dossiers/UBND-Q1-20261116-0001?phone=%2B{REDACTED}"


@pytest.mark.parametrize(
    "code",
    [
        "UBND-Q1-20261116-0001",
        "UBND-20261121-0007",
        "SO-TNMT-20260101-1234",
        "UBND-P.84-20261116-0012",
        "X0-20261116-9999",
    ],
)
def test_dossier_codes_survive(code: str) -> None:
    assert redact_text(f"dossier {code} received") == f"dossier {code} received"
    assert redact(event="x", dossier_code=code)["dossier_code"] == code


@pytest.mark.parametrize(
    "value",
    [
        "0a70d409-006b-4831-a5bb-eaa131525b6e",
        "12345678-1234-4234-8234-123456789012",  # last group: twelve decimal digits
        "84123456-1234-4234-8234-091234567812",  # last group starts like a phone number
        "00000000-0000-4000-8000-0912345678ab",
        str(uuid.UUID(int=79301012345)),
    ],
)
def test_uuids_survive(value: str) -> None:
    assert redact_text(f"event {value} published") == f"event {value} published"
    assert redact(event="x", dossier_id=value)["dossier_id"] == value


def test_other_values_are_kept() -> None:
    out = redact(event="http_request", status=201, duration_ms=3.5, ok=True, missing=None)
    assert out == {
        "event": "http_request",
        "status": 201,
        "duration_ms": 3.5,
        "ok": True,
        "missing": None,
    }
    when = "2026-11-16T09:00:00+07:00"
    assert redact_text(f"due {when}, 5 working_days, 480 minutes") == (
        f"due {when}, 5 working_days, 480 minutes"
    )


def test_a_phone_next_to_a_uuid_is_still_redacted() -> None:
    value = "0a70d409-006b-4831-a5bb-eaa131525b6e"
    assert redact_text(f"{value} 0912345678") == f"{value} {REDACTED}"


# Texts made of what the shapes are made of, UUIDs and their neighbours among them.
_PIECES = st.one_of(
    st.text(alphabet="0123456789+@.-_ abcdefAF84\u0669", max_size=24),
    st.uuids().map(str),
    st.sampled_from(["0912345678", "+84912345678", "001234567890", "an@example.vn", "dossier."]),
)


@given(st.lists(_PIECES, max_size=5).map("".join))
def test_the_quick_answer_is_the_full_scans(text: str) -> None:
    assert redact_text(text) == redact_shapes(text)
