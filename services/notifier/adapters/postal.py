"""Postal operators (bưu chính công ích): the contract's HTTP protocol, and a JSON-lines file.

``POST {base_url}/orders`` → 200 ``{"tracking_code"}``. The operator keeps the first order per
``reference`` (the dossier code), so placing an order again after a timeout or a crash gets
the same tracking code and no second pick-up.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from services.core.domain.codes import TRACKING_CODE_MAX_LENGTH
from services.notifier.adapters.http_calls import HttpProvider, Outcome
from services.notifier.adapters.jsonl_outbox import JsonlOutbox

TRACKING_CODE_TOO_LONG = f"tracking code over {TRACKING_CODE_MAX_LENGTH} characters"

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
    # The agency sending the result back (an operator may ship from its own address); not
    # part of the generic protocol's body.
    agency_code: str | None = None

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
        if verdict.outcome == "accepted" and not fits_tracking_code(verdict.value):
            # A code longer than any column keeps, or than the texts are budgeted for, cannot
            # be stored nor texted whole, and asking again gets the same code back (the
            # operator keeps the first order per reference): a permanent failure, which tells
            # the agency's supervisors that the result is still with them.
            return OrderResult("failed", error=TRACKING_CODE_TOO_LONG)
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
            tracking_code = legacy_tracking_code(order.reference)
        return OrderResult("accepted", tracking_code=str(tracking_code))

    async def aclose(self) -> None:
        """Nothing held open: each line is written with its own open, append, flush, close."""


def fits_tracking_code(code: str | None) -> bool:
    return code is not None and len(code) <= TRACKING_CODE_MAX_LENGTH


def local_tracking_code() -> str:
    """A code no one can guess: one made from the dossier code (as it once was) let anyone
    who knew a dossier's code report its parcel delivered. 20 characters, well within
    TRACKING_CODE_MAX_LENGTH (what every column keeps and every text shows whole)."""
    return f"LOCAL-{secrets.token_hex(7).upper()}"


def legacy_tracking_code(reference: str) -> str:
    """The code of an order whose line was written before the file kept codes. Once it was
    "LOCAL-" + the dossier code, up to 6 + 36 characters: longer than the texts show whole.
    A digest of the reference instead: the same for every repeat of the order, 20 characters
    like every other embedded code (and the callbacks need the token, so knowing the dossier
    code is not enough to report its parcel)."""
    digest = hashlib.sha256(reference.encode()).hexdigest()[:14].upper()
    return f"LOCAL-{digest}"
