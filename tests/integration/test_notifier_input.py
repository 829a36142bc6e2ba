"""Bad input to the notifier's callbacks: a 422 naming the field, and nothing recorded.

On PostgreSQL a NUL in a message id or tracking code reached the query and came back as a
500; the providers would retry such a callback for ever.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from services.notifier.adapters import tables as t
from tests.fixtures.notifier import NotifierHarness

CONTROLS = ["\x00", "\x1b", "\x7f", "\x85", "\u202e", "\u2066"]


async def rows(n: NotifierHarness) -> tuple[int, ...]:
    async with n.engine.connect() as conn:
        counts = [
            (await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one()
            for table in t.metadata.sorted_tables
        ]
    return tuple(counts)


@pytest.mark.parametrize("char", CONTROLS)
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/sms/receipts", {"message_id": "m-1{c}", "status": "delivered"}, "message_id"),
        ("/sms/receipts", {"message_id": "m-1", "status": "failed", "error": "x{c}"}, "error"),
        (
            "/postal/callbacks",
            {"tracking_code": "EB1{c}VN", "status": "delivered"},
            "tracking_code",
        ),
    ],
)
async def test_a_control_character_in_a_callback_is_422_naming_the_field(
    notifier: NotifierHarness, path: str, body: dict[str, Any], field: str, char: str
) -> None:
    sent = {k: v.replace("{c}", char) if isinstance(v, str) else v for k, v in body.items()}
    before = await rows(notifier)
    r = await notifier.client.post(path, json=sent)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == field and error["code"] == "validation_error", error
    assert f"U+{ord(char):04X}" in error["message"], error
    assert await rows(notifier) == before


async def test_a_provider_error_text_may_span_lines(notifier: NotifierHarness) -> None:
    r = await notifier.client.post(
        "/sms/receipts",
        json={"message_id": "m-unknown", "status": "failed", "error": "rejected:\n\tno route"},
    )
    assert r.status_code == 202, r.text
