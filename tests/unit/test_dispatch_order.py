"""The dispatcher sends a claimed batch concurrently, except a dossier's notices to one phone,
which go one after the other in the order of the facts (a citizen must not read "needs a
supplement" before "received")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from services.notifier.adapters.repository import Outgoing
from services.notifier.adapters.sms_gateway import SendResult, SmsRequest
from services.notifier.dispatch import Dispatcher, DispatchSettings
from services.notifier.domain.retry import RetryPolicy


class SlowOnTheFirstGateway:
    """Holds the first notice until the other dossier's has been answered, and logs when
    each request starts and ends."""

    name = "primary"

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.other_answered = asyncio.Event()

    async def send(self, request: SmsRequest) -> SendResult:
        self.log.append(("start", request.request_id))
        if request.request_id == "a-received":
            await self.other_answered.wait()
        self.log.append(("end", request.request_id))
        if request.request_id == "b-received":
            self.other_answered.set()
        return SendResult("accepted", self.name, message_id=f"m-{request.request_id}")

    async def aclose(self) -> None:
        return None


def notice(notice_id: str, dossier: str, phone: str) -> Outgoing:
    return Outgoing(notice_id, phone, "text", False, 0, None, 0, dossier)


async def test_one_dossiers_notices_go_in_order_while_others_go_beside_them() -> None:
    gateway = SlowOnTheFirstGateway()
    settings = DispatchSettings("MOTCUA", None, None, RetryPolicy(horizon=timedelta(hours=1)))
    dispatcher = Dispatcher(
        engine=Any,  # type: ignore[arg-type]  # sending touches no database
        gateways=[gateway],
        postal=Any,  # type: ignore[arg-type]
        composer=Any,  # type: ignore[arg-type]
        settings=settings,
        clock=lambda: datetime(2026, 12, 2, tzinfo=UTC),
    )
    batch = [
        notice("a-received", "A", "+84912345678"),
        notice("a-supplement", "A", "+84912345678"),
        notice("b-received", "B", "+84987654321"),
    ]
    results = await asyncio.wait_for(dispatcher._send_in_order(batch), 5)

    assert set(results) == {"a-received", "a-supplement", "b-received"}
    # B went while A's first was held; A's second only after A's first was answered.
    assert gateway.log.index(("end", "b-received")) < gateway.log.index(("end", "a-received"))
    assert gateway.log.index(("end", "a-received")) < gateway.log.index(("start", "a-supplement"))
