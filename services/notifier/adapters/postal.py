"""Postal operators (bưu chính công ích): the contract's HTTP protocol, and a JSON-lines file.

``POST {base_url}/orders`` → 200 ``{"tracking_code"}``. The operator keeps the first order per
``reference`` (the dossier code), so placing an order again after a timeout or a crash gets
the same tracking code and no second pick-up.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from services.notifier.adapters.http_calls import HttpProvider, Outcome
from services.notifier.adapters.jsonl_outbox import JsonlOutbox

__all__ = [
    "HttpPostalOperator",
    "JsonlPostalOperator",
    "OrderResult",
    "Outcome",
    "PostalOperator",
    "PostalOrderRequest",
]


@dataclass(frozen=True)
class PostalOrderRequest:
    reference: str  # dossier code
    receiver_name: str
    receiver_phone: str
    address: dict[str, str]  # street, ward, district, province
    content: str
    callback_url: str | None
    cod_amount: int = 0

    def body(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "receiver": {
                "name": self.receiver_name,
                "phone": self.receiver_phone,
                "address": dict(self.address),
            },
            "content": self.content,
            "cod_amount": self.cod_amount,
            "callback_url": self.callback_url,
        }


@dataclass(frozen=True)
class OrderResult:
    outcome: Outcome
    tracking_code: str | None = None  # when accepted
    error: str | None = None  # when retry/failed: status, error class or code, no personal data
    retry_after_seconds: float | None = None


class PostalOperator(Protocol):
    name: str

    async def place(self, order: PostalOrderRequest) -> OrderResult: ...

    async def aclose(self) -> None: ...


class HttpPostalOperator(HttpProvider):
    """Speaks the contract's protocol (POST {base_url}/orders)."""

    def __init__(self, name: str, base_url: str, **options: Any) -> None:
        super().__init__(name, base_url, "/orders", **options)

    async def place(self, order: PostalOrderRequest) -> OrderResult:
        verdict = await self.call(order.body(), "tracking_code")
        return OrderResult(
            outcome=verdict.outcome,
            tracking_code=verdict.value,
            error=verdict.error,
            retry_after_seconds=verdict.retry_after_seconds,
        )


class JsonlPostalOperator:
    """The embedded default: each order is one JSON line (DATA_DIR/outbox/postal.jsonl), with
    the tracking code it was given."""

    def __init__(self, path: Path, clock: Callable[[], datetime], name: str = "jsonl") -> None:
        self.name = name
        self._outbox = JsonlOutbox(path, key_field="reference", answer_field="tracking_code")
        self._clock = clock

    async def place(self, order: PostalOrderRequest) -> OrderResult:
        at = self._clock().isoformat()
        line = {**order.body(), "tracking_code": local_tracking_code(), "at": at}
        # A repeated reference gets the first order's code back, as from the operator.
        _, tracking_code = await self._outbox.append_first(line)
        if tracking_code is None:  # a line written before the codes were kept in the file
            tracking_code = f"LOCAL-{order.reference}"
        return OrderResult("accepted", tracking_code=str(tracking_code))

    async def aclose(self) -> None:
        """Nothing held open: each line is written with its own open, append, flush, close."""


def local_tracking_code() -> str:
    """A code no one can guess: one made from the dossier code (as it once was) let anyone
    who knew a dossier's code report its parcel delivered. 20 characters, so the SMS that
    gives it ({tracking}, cut at 20) shows it whole, and it fits every column (40)."""
    return f"LOCAL-{secrets.token_hex(7).upper()}"
