"""One JSON POST to a provider, classified the way the contract's retry rules read.

Shared by the SMS gateway and the postal operator clients: both speak "200 with a field →
accepted; 429, 5xx, timeout → retry later; any other 4xx → permanent failure".

Error strings never carry the request or the response body: they name the HTTP status, the
error class, or a provider's short error code, so they are safe to log and to store.

The calls go through aiohttp (``HttpClient``): at the notifier's send rate the HTTP client is
most of what an SMS costs, and aiohttp's C parser and lean pool cost about a tenth of httpx's
CPU a request (bench/README.md, "Notifier send rate"). What reaches the provider, the
timeouts, the connection reuse and the verdicts are what they were with httpx, and so are the
error strings (httpx's exception names), which are stored with the notices.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiohttp
import httpx
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from services.notifier.adapters.rate_limit import TokenBucket

Outcome = Literal["accepted", "retry", "failed"]

MALFORMED = "malformed response"

# As httpx's defaults were: at most 100 connections to a provider, an idle one kept 5 s.
MAX_CONNECTIONS = 100
KEEPALIVE_SECONDS = 5.0

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


class Response(Protocol):
    """What the rules read of a provider's answer: an ``Answer`` (httpx's Response reads the
    same way)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    def json(self) -> Any: ...


@dataclass(frozen=True)
class Answer:
    """A provider's answer, read whole; ``headers`` match names whatever their case."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class HttpClient:
    """A pool of keep-alive connections (aiohttp), opened on first use in the running loop.

    Like httpx's client before it: the proxy the environment names (HTTP_PROXY, HTTPS_PROXY,
    NO_PROXY), read once a host rather than on every request as aiohttp's ``trust_env`` would
    (two thread hops a call); httpx's certificate roots (certifi, or SSL_CERT_FILE /
    SSL_CERT_DIR); redirects not followed (a 3xx is an answer to classify); cookies kept.
    """

    def __init__(
        self,
        *,
        max_connections: int = MAX_CONNECTIONS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_seconds = keepalive_seconds
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str | None, int | None], URL | None] = {}
        self._closed = False

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def request(
        self,
        method: str,
        url: str,
        body: Mapping[str, Any] | None,
        timeout_seconds: float,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """The answer, read whole; raises aiohttp's errors (``send_json`` reads them)."""
        target = URL(url)
        sent = dict(headers) if headers else {}
        data = None
        if body is not None:
            # Serialised as httpx did: UTF-8 (diacritics as they are, not \u escapes), compact.
            data = json.dumps(
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
            sent["Content-Type"] = "application/json"
        # httpx's Timeout(t): t to get a connection (from the pool, or a new one), t
        # between two reads of the answer; no bound on the whole.
        timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_seconds, sock_read=timeout_seconds
        )
        async with self._open().request(
            method,
            target,
            data=data,
            headers=sent,
            timeout=timeout,
            allow_redirects=False,
            proxy=self._proxy(target),
        ) as response:
            content = await response.read()
            return Answer(response.status, response.headers, content)

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this HTTP client is closed")
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                keepalive_timeout=self._keepalive_seconds,
                ssl=httpx.create_ssl_context(),
            )
            self._session = aiohttp.ClientSession(connector=connector, trust_env=False)
        return self._session

    def _proxy(self, url: URL) -> URL | None:
        key = (url.scheme, url.host, url.port)
        if key not in self._proxies:
            try:
                self._proxies[key] = get_env_proxy_for_url(url)[0]
            except LookupError:  # none for this host
                self._proxies[key] = None
        return self._proxies[key]

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()


async def post_json(
    client: HttpClient,
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
    client: HttpClient,
    url: str,
    body: dict[str, Any] | None,
    timeout_seconds: float,
    *,
    method: str = "POST",
    headers: dict[str, str] | None = None,
) -> Answer | Verdict:
    """POST ``body`` (or GET, without one): the provider's answer, or the verdict when none
    came (network trouble: always a retry). For a provider whose answers need reading of
    their own (eSMS, Viettel Post)."""
    try:
        return await client.request(method, url, body, timeout_seconds, headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        return no_answer(exc)


def no_answer(exc: aiohttp.ClientError | TimeoutError) -> Verdict:
    """The verdict when a call got no answer, named as httpx named it (``ReadTimeout``,
    ``ConnectError``…): these strings are stored with the notices and read by people."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return _timeout("ConnectTimeout")  # no connection in time, new or from the pool
    if isinstance(exc, TimeoutError):  # aiohttp's SocketTimeoutError: the answer is late
        # The provider may have taken the message: retrying is safe because it deduplicates.
        return _timeout("ReadTimeout")
    name: str
    if isinstance(exc, aiohttp.ClientConnectorError):
        name = "ConnectError"  # refused, unreachable, no such host, TLS refused
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        name = "RemoteProtocolError"  # closed before the whole answer came
    elif isinstance(exc, aiohttp.ClientResponseError):
        name = "RemoteProtocolError"  # not an HTTP answer
    elif isinstance(exc, aiohttp.ClientOSError):
        name = "ReadError"  # reset while the request or the answer was on the way
    elif isinstance(exc, aiohttp.InvalidURL):
        return Verdict("retry", error="request error (InvalidURL)")
    else:
        name = type(exc).__name__
    return Verdict("retry", error=f"transport error ({name})")


def _timeout(name: str) -> Verdict:
    return Verdict("retry", error=f"timeout ({name})", maybe_taken=True)


def classify(response: Response, success_field: str) -> Verdict:
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


def _success_value(response: Response, field: str) -> str | None:
    body = json_object(response)
    value = body.get(field) if body is not None else None
    return value if isinstance(value, str) and value else None


def _error_text(response: Response) -> str:
    code = error_code(response)
    return f"HTTP {response.status_code} {code}" if code else f"HTTP {response.status_code}"


def error_code(response: Response) -> str | None:
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


def json_object(response: Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None
    return body if isinstance(body, dict) else None


def retry_after(response: Response) -> float | None:
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
        client: HttpClient | None = None,
        bucket: TokenBucket | None = None,
    ) -> None:
        self.name = name
        self._url = base_url.rstrip("/") + path
        self._timeout = timeout_seconds
        # An injected bucket (a test's fake clock, or one shared by two names of one
        # provider account) replaces rate_per_second and burst.
        self._bucket = bucket if bucket is not None else TokenBucket(rate_per_second, burst)
        self._owns_client = client is None  # a client passed in belongs to the caller
        self._client = client or HttpClient()

    async def call(self, body: dict[str, Any], success_field: str) -> Verdict:
        answer = await self.post(body)
        return answer if isinstance(answer, Verdict) else classify(answer, success_field)

    async def post(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Answer | Verdict:
        """One POST within the rate: the answer, or the verdict when none came."""
        await self._bucket.acquire()
        return await send_json(self._client, self._url, body, self._timeout, headers=headers)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
