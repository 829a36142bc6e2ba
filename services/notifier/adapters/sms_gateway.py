"""SMS gateways: the contract's HTTP protocol, and a JSON-lines file for the embedded default.

``POST {base_url}/messages`` with the message → 200 ``{"message_id", "status": "accepted"}``.
The gateway deduplicates on ``request_id``, so a send may be repeated after a timeout or a
crash without the citizen getting two texts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from services.notifier.adapters.http_calls import HttpProvider, Outcome, Verdict
from services.notifier.adapters.jsonl_outbox import JsonlOutbox

__all__ = [
    "HttpSmsGateway",
    "JsonlSmsGateway",
    "Outcome",
    "SendResult",
    "SmsGateway",
    "SmsRequest",
]


@dataclass(frozen=True)
class SmsRequest:
    to: str  # E.164, e.g. +84912345678
    text: str
    unicode: bool
    request_id: str  # stable per notice: the gateway deduplicates on it
    sender: str  # brandname, at most 11 characters
    callback_url: str | None

    def body(self) -> dict[str, Any]:
        return {
            "to": self.to,
            "text": self.text,
            "unicode": self.unicode,
            "request_id": self.request_id,
            "sender": self.sender,
            "callback_url": self.callback_url,
        }


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    gateway: str  # the gateway's name
    message_id: str | None = None  # when accepted
    error: str | None = None  # when retry/failed: status, error class or code, no personal data
    retry_after_seconds: float | None = None  # from a Retry-After header on 429/503
    maybe_taken: bool = False  # a timeout: the gateway may have the message

    @classmethod
    def of(cls, verdict: Verdict, gateway: str) -> SendResult:
        """What one call's verdict (adapters.http_calls) says of the send."""
        return cls(
            outcome=verdict.outcome,
            gateway=gateway,
            message_id=verdict.value,
            error=verdict.error,
            retry_after_seconds=verdict.retry_after_seconds,
            maybe_taken=verdict.maybe_taken,
        )


class SmsGateway(Protocol):
    name: str

    async def send(self, request: SmsRequest) -> SendResult: ...

    async def aclose(self) -> None: ...


class HttpSmsGateway(HttpProvider):
    """Speaks the contract's protocol (POST {base_url}/messages)."""

    def __init__(self, name: str, base_url: str, **options: Any) -> None:
        super().__init__(name, base_url, "/messages", **options)

    async def send(self, request: SmsRequest) -> SendResult:
        return SendResult.of(await self.call(request.body(), "message_id"), self.name)


class JsonlSmsGateway:
    """The embedded default: each SMS is one JSON line in a file (DATA_DIR/outbox/sms.jsonl)."""

    def __init__(self, path: Path, clock: Callable[[], datetime], name: str = "jsonl") -> None:
        self.name = name
        self._outbox = JsonlOutbox(path, key_field="request_id")
        self._clock = clock

    async def send(self, request: SmsRequest) -> SendResult:
        await self._outbox.append_once({**request.body(), "at": self._clock().isoformat()})
        # Derived from the request id, so a repeated request gets the first answer back.
        return SendResult("accepted", self.name, message_id=f"jsonl-{request.request_id}")

    async def aclose(self) -> None:
        """Nothing held open: each line is written with its own open, append, flush, close."""
