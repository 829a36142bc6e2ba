"""The notifier records a batch of SMS outcomes in one transaction, on SQLite and PostgreSQL,
with what one SMS at a time recorded; an outcome not committed is sent again with the same
request_id."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifier.adapters import repository as repo
from tests.fixtures.notifier import NotifierHarness


def person(phone: str) -> dict[str, str]:
    return {"full_name": "Trần Thị Bình", "phone": phone, "id_number": "001203004568"}


@pytest.fixture
def n(notifier: NotifierHarness) -> NotifierHarness:
    return notifier


@contextmanager
def commits(engine: AsyncEngine) -> Iterator[list[int]]:
    """Counts the transactions committed on `engine` inside the block."""
    seen: list[int] = []

    def count(conn: Any) -> None:
        seen.append(1)

    sa.event.listen(engine.sync_engine, "commit", count)
    try:
        yield seen
    finally:
        sa.event.remove(engine.sync_engine, "commit", count)


async def sms_statuses(n: NotifierHarness) -> list[str]:
    return sorted(x["status"] for x in await n.notices())


async def test_a_batch_of_sms_outcomes_is_recorded_in_one_transaction(n: NotifierHarness) -> None:
    await n.intake.procedure()
    for k in range(6):
        await n.intake.dossier(applicant=person(f"09123456{k:02d}"))
    await n.feed()
    n.sms.fail_next(503, retry_after=30)
    n.sms.reject_next(400, "invalid_number")

    with commits(n.engine) as committed:
        assert await n.service.dispatcher.send_due_sms() == 6
    assert len(committed) == 2  # the claim, then every outcome

    assert await sms_statuses(n) == ["accepted"] * 4 + ["failed", "pending"]
    by_status = {x["status"]: x for x in await n.notices()}
    retry, failed = by_status["pending"], by_status["failed"]
    assert retry["attempts"] == 1 and retry["lease_until"] is None
    assert retry["next_attempt_at"] - n.intake.clock() == timedelta(seconds=30)
    assert await n.history(retry["id"]) == ["pending", "retry"]
    assert failed["error"] == "HTTP 400 invalid_number"
    assert await n.history(failed["id"]) == ["pending", "failed"]
    for notice in await n.notices(status="accepted"):
        assert await n.history(notice["id"]) == ["pending", "accepted"]
        assert n.sms.messages[notice["id"]]["message_id"] == notice["message_id"]

    n.intake.clock.advance(seconds=30)
    assert await n.dispatch() == 1
    assert await sms_statuses(n) == ["accepted"] * 5 + ["failed"]


async def test_outcomes_not_committed_are_sent_again_with_the_same_request_ids(
    n: NotifierHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies (here: the database goes) between the gateway's answers and their
    commit: the batch stays leased, then goes again, and the gateway recognises each SMS."""
    await n.intake.procedure()
    for k in range(3):
        await n.intake.dossier(applicant=person(f"09123456{k:02d}"))
    await n.feed()

    async def lost(*args: Any) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(repo, "record_attempts", lost)
    with pytest.raises(ConnectionError):
        await n.service.dispatcher.send_due_sms()
    monkeypatch.undo()
    assert await sms_statuses(n) == ["sending"] * 3 and n.sms.accepted_count() == 3

    n.intake.clock.advance(seconds=59)
    assert await n.dispatch() == 0  # leased
    n.intake.clock.advance(seconds=1)
    assert await n.dispatch() == 3

    ids = [r["request_id"] for r in n.sms.requests]
    assert len(ids) == 6 and len(set(ids)) == 3 and n.sms.accepted_count() == 3
    assert await sms_statuses(n) == ["accepted"] * 3
    for notice in await n.notices():
        assert await n.history(notice["id"]) == ["pending", "accepted"]
        assert n.sms.messages[notice["id"]]["message_id"] == notice["message_id"]
