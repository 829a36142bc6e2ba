"""One JSON POST to a provider, classified the way the contract's retry rules read.

Shared by the SMS gateway and the postal operator clients: both speak "200 with a field →
accepted; 429, 5xx, timeout → retry later; any other 4xx → permanent failure".

Error strings never carry the request or the response body: they name the HTTP status, the
error class, or a provider's short error code, so they are safe to log and to store.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from services.notifier.adapters.rate_limit import TokenBucket

Outcome = Literal["accepted", "retry", "failed"]

MALFORMED = "malformed response"

# A provider's error code is trusted only when it looks like a code: a letter first, then
# letters, digits and _ . -, short, and no run of digits long enough to be a phone number.
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,39}")
_LONG_DIGITS = re.compile(r"\d{6,}")


@dataclass(frozen=True)
class Verdict:
    """What one call came to; ``value`` is the success field (message id, tracking code)."""

    outcome: Outcome
    value: str | None = None
    error: str | None = None
    retry_after_seconds: float | None = None
    # No answer in time: the provider may have taken the request all the same.
    maybe_taken: bool = False


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    *,
    success_field: str,
    timeout_seconds: float,
) -> Verdict:
    """POST ``body`` and classify the answer; never raises for network or HTTP trouble."""
    answer = await send_json(client, url, body, timeout_seconds)
    return answer if isinstance(answer, Verdict) else classify(answer, success_field)


async def send_json(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any] | None,
    timeout_seconds: float,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> httpx.Response | Verdict:
    """POST ``body`` (or GET, without one): the provider's answer, or the verdict when none
    came (network trouble: always a retry). For a provider whose answers need reading of
    their own (eSMS, Viettel Post)."""
    try:
        return await client.request(
            method, url, json=body, headers=headers, timeout=timeout_seconds
        )
    except httpx.TimeoutException as exc:
        # The provider may have taken the message: retrying is safe because it deduplicates.
        return Verdict("retry", error=f"timeout ({type(exc).__name__})", maybe_taken=True)
    except httpx.TransportError as exc:  # refused, reset, protocol error, proxy
        return Verdict("retry", error=f"transport error ({type(exc).__name__})")
    except httpx.RequestError as exc:  # e.g. a body that fails to decode
        return Verdict("retry", error=f"request error ({type(exc).__name__})")


def classify(response: httpx.Response, success_field: str) -> Verdict:
    status = response.status_code
    if 200 <= status < 300:
        value = _success_value(response, success_field)
        return Verdict("accepted", value=value) if value else Verdict("retry", error=MALFORMED)
    error = _error_text(response)
    if _is_transient(status):
        return Verdict("retry", error=error, retry_after_seconds=retry_after(response))
    if 400 <= status < 500:
        return Verdict("failed", error=error)
    # 1xx/3xx: the provider is misconfigured or moved; retrying gives someone time to fix it.
    return Verdict("retry", error=error)


def _is_transient(status: int) -> bool:
    # 408 is the server timing out on us: the request was not processed, like a timeout.
    return status in (408, 429) or status >= 500


def _success_value(response: httpx.Response, field: str) -> str | None:
    body = json_object(response)
    value = body.get(field) if body is not None else None
    return value if isinstance(value, str) and value else None


def _error_text(response: httpx.Response) -> str:
    code = error_code(response)
    return f"HTTP {response.status_code} {code}" if code else f"HTTP {response.status_code}"


def error_code(response: httpx.Response) -> str | None:
    """The provider's short error code (``error``, ``code`` or ``error.code``), if it is one."""
    body = json_object(response)
    if body is None:
        return None
    candidates = [body.get("error"), body.get("code")]
    nested = body.get("error")
    if isinstance(nested, dict):
        candidates.append(nested.get("code"))
    for candidate in candidates:
        if isinstance(candidate, str) and _looks_like_code(candidate):
            return candidate
    return None


def _looks_like_code(value: str) -> bool:
    return _CODE.fullmatch(value) is not None and _LONG_DIGITS.search(value) is None


def json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    return body if isinstance(body, dict) else None


def retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds; the HTTP-date form is ignored (the caller's backoff applies)."""
    raw = response.headers.get("retry-after")
    if raw is None:
        return None
    try:
        seconds = float(raw.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


class HttpProvider:
    """A provider reached by JSON POSTs to one path, behind its own token bucket; never
    raises for network or HTTP trouble."""

    def __init__(
        self,
        name: str,
        base_url: str,
        path: str,
        *,
        rate_per_second: float = 20.0,
        burst: int = 20,
        timeout_seconds: float = 10.0,
        client: httpx.AsyncClient | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + path
        self._timeout = timeout_seconds
        # An injected bucket (a test's fake clock, or one shared by two names of one
        # provider account) replaces rate_per_second and burst.
        self._bucket = bucket if bucket is not None else TokenBucket(rate_per_second, burst)
        self._owns_client = client is None  # a client passed in belongs to the caller
        self._client = client or httpx.AsyncClient()

    async def call(self, body: dict[str, Any], success_field: str) -> Verdict:
        answer = await self.post(body)
        return answer if isinstance(answer, Verdict) else classify(answer, success_field)

    async def post(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response | Verdict:
        """One POST within the rate: the answer, or the verdict when none came."""
        await self._bucket.acquire()
        return await send_json(self._client, self._url, body, self._timeout, headers=headers)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
