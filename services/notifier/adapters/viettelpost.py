"""Viettel Post (viettelpost.vn): its partner API, for the postal return of results.

What this relies on, from Viettel Post's partner documentation ("Tài liệu kết nối API
Viettelpost", partner.viettelpost.vn) and the integrations that use it:

- Every answer is an envelope ``{"status", "error", "message", "data"}``, usually with HTTP 200
  whatever happened: the envelope says whether it worked (``error`` false, ``status`` 200).
- Sign-in: ``POST {base}/v2/user/Login`` with ``{"USERNAME", "PASSWORD"}`` answers
  ``data.token`` and ``data.expired``, the token's end in milliseconds since the epoch (one
  draft specification shows an ISO date instead; the answers seen from the API carry
  milliseconds, which is what is read, and a token without a readable end is renewed after
  ``TOKEN_FALLBACK_LIFETIME``). The token goes in the ``Token`` header of every other call.
  It is renewed ``TOKEN_MARGIN`` before its end, and once more when a call answers that it is
  invalid or expired (integrations read that from an envelope ``error`` whose ``message``
  names the token, status 201 or 202; an HTTP 401 is read the same): the call is then made
  again, once, with the new token.
- The sender is a pickup address registered on the account (``GET /v2/user/listInventory``:
  ``groupaddressId``, ``cusId``, ``name``, ``phone``, ``address``, ``provinceId``,
  ``districtId``, ``wardsId``), sent as ``GROUPADDRESS_ID``, ``CUS_ID`` and ``SENDER_*``: the
  receiving agency's own (``MOTCUA_POSTAL_PICKUP_IDS``) or the account's default.
- Addresses are ids: ``GET /v2/categories/listProvinceById?provinceId=-1`` (``PROVINCE_ID``,
  ``PROVINCE_CODE`` such as HCM, ``PROVINCE_NAME``), ``listDistrict?provinceId=``
  (``DISTRICT_ID``, ``DISTRICT_NAME`` such as "QUẬN 1") and ``listWards?districtId=``
  (``WARDS_ID``, ``WARDS_NAME``). Ours are names: matched without accents, case or the
  "Tỉnh / Thành phố / Quận / Huyện / Phường / Xã…" prefix (``place_key``), cached
  ``ADDRESS_TTL``. An address that matches nothing, or two, fails the order (no retry: a
  retry would find the same lists).
- Order: ``POST {base}/v2/order/createOrder`` with upper-case fields. ``ORDER_NUMBER`` in the
  request is the partner's own code (our dossier code); the answer's ``data.ORDER_NUMBER`` is
  Viettel Post's number for the parcel, our tracking code. The webhook carries both, ours as
  ``ORDER_REFERENCE``: no integration sends ``ORDER_REFERENCE`` in the request, so neither do
  we. The receiver's ward goes as ``RECEIVER_WARDS`` and the sender's as ``SENDER_WARD``, as
  in Viettel Post's own sample request (some clients write ``RECEIVER_WARD``).
- A second order with a code already used is refused ("đã tồn tại", exists) without the
  first one's number, as carriers do (the order exists; its number was never returned). No
  second pick-up is made; the order waits (retried with backoff, refused the same way each
  time) until Viettel Post's webhook tells the number with our code as ``ORDER_REFERENCE``
  (``handlers.record_order_number``). The same webhook places an order whose createOrder
  answer has not come yet.
- Webhook: Viettel Post POSTs ``{"DATA": {ORDER_NUMBER, ORDER_REFERENCE, ORDER_STATUS,
  STATUS_NAME, ORDER_STATUSDATE…}, "TOKEN"}`` to the URL registered with it; it expects HTTP
  200 and sends again otherwise. Its ``ORDER_STATUS`` codes → ours: ``STATUSES``
  (docs/gateways.md has the table). Sources disagree on where Viettel Post puts its own
  secret (``TOKEN`` in the body, or an ``Authorization`` header): the URL registered carries
  ours in its path instead, like eSMS's (api/callbacks.py).

Error strings name Viettel Post's status numbers, never its ``message``: that text can quote
the address or the name it was sent, and errors are stored and logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from services.core.domain.postal_status import PostalStatus
from services.core.runtime.settings import Settings
from services.notifier.adapters.esms import esms_phone as national_phone
from services.notifier.adapters.http_calls import (
    HttpProvider,
    Response,
    Verdict,
    json_object,
    retry_after,
    send_json,
)
from services.notifier.adapters.postal import (
    TRACKING_CODE_TOO_LONG,
    OrderResult,
    PostalOrderRequest,
    fits_tracking_code,
)
from services.notifier.domain.sms_text import strip_diacritics

LOGIN_PATH = "/v2/user/Login"
INVENTORY_PATH = "/v2/user/listInventory"
ORDER_PATH = "/v2/order/createOrder"
PROVINCES_PATH = "/v2/categories/listProvinceById?provinceId=-1"
DISTRICTS_PATH = "/v2/categories/listDistrict?provinceId={}"
WARDS_PATH = "/v2/categories/listWards?districtId={}"

TOKEN_MARGIN = timedelta(minutes=5)
TOKEN_FALLBACK_LIFETIME = timedelta(hours=1)
# Provinces, districts and wards change by decree, a few times a decade: a day is fresh enough,
# and a process that runs for months still sees a merger.
ADDRESS_TTL = timedelta(hours=24)

# A result of a dossier is papers in an envelope: tài liệu, light, no value declared, no
# cash on delivery, the postage paid by the sender (the agency's contract).
PRODUCT_TYPE = "TH"
PRODUCT_WEIGHT_GRAMS = 200
SENDER_PAYS = 1

# ORDER_STATUS → ours; a code not here (created, waiting, handed to a post office, edited…)
# moves nothing.
STATUSES: dict[int, PostalStatus] = {
    -108: "picked_up",  # gửi tại bưu cục: dropped at a post office
    105: "picked_up",  # bưu tá đã nhận hàng
    200: "picked_up",  # nhận từ bưu tá, bưu cục gốc
    **dict.fromkeys((202, 300, 301, 302, 303, 400, 401, 402, 403), "in_transit"),
    500: "in_transit",  # giao bưu tá đi phát: out for delivery
    **dict.fromkeys((506, 507, 508, 509, 550), "in_transit"),  # tồn, phát tiếp: tried again
    501: "delivered",  # phát thành công
    # Cancelled, by Viettel Post or at our request: it will not be delivered.
    **dict.fromkeys((101, 107, 201, 503), "failed"),
    # Chuyển hoàn: on its way back to the agency, or back.
    **dict.fromkeys((502, 504, 505, 515), "returned"),
}


def status_of(code: int) -> PostalStatus | None:
    return STATUSES.get(code)


# -- envelopes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    status: int
    error: bool
    message: str  # read to tell refusals apart, never stored nor logged
    data: Any


def envelope_of(response: Response) -> Envelope | None:
    body = json_object(response)
    if body is None:
        return None
    try:
        status = int(body.get("status", response.status_code))
    except (TypeError, ValueError):
        return None
    message = body.get("message")
    text = message if isinstance(message, str) else ""
    return Envelope(status, bool(body.get("error")), text, body.get("data"))


def refuses_token(response: Response, envelope: Envelope | None) -> bool:
    if response.status_code == 401:
        return True
    return envelope is not None and envelope.error and "token" in envelope.message.lower()


_EXISTS = ("da ton tai", "exist", "duplicat")


def is_duplicate(envelope: Envelope) -> bool:
    said = strip_diacritics(envelope.message).lower()
    return envelope.error and any(word in said for word in _EXISTS)


def _unavailable(response: Response) -> Verdict | None:
    """The answer of a Viettel Post that is unwell (429, 5xx, a timeout of its own)."""
    status = response.status_code
    if status in (408, 429) or status >= 500:
        return Verdict(
            "retry", error=f"viettelpost HTTP {status}", retry_after_seconds=retry_after(response)
        )
    return None


def order_verdict(response: Response) -> Verdict:
    """What a createOrder answer says of the order (a refused token is handled before)."""
    unwell = _unavailable(response)
    if unwell is not None:
        return unwell
    envelope = envelope_of(response)
    if envelope is None:
        return Verdict("retry", error=f"viettelpost HTTP {response.status_code}: malformed answer")
    if not envelope.error and envelope.status == 200:
        data = envelope.data if isinstance(envelope.data, dict) else {}
        number = data.get("ORDER_NUMBER")
        if isinstance(number, int | str) and str(number):
            return Verdict("accepted", value=str(number))
        return Verdict("retry", error="viettelpost 200 without an ORDER_NUMBER")
    if is_duplicate(envelope):
        # Viettel Post has this dossier's order: no second one. Its number comes with the
        # webhook (ORDER_REFERENCE); meanwhile the order waits, and asking again is harmless.
        return Verdict("retry", error="viettelpost: order exists, its number awaited")
    if envelope.status >= 500:
        return Verdict("retry", error=f"viettelpost {envelope.status}")
    return Verdict("failed", error=f"viettelpost {envelope.status}: order refused")


# -- addresses ------------------------------------------------------------------------------

_PREFIXES = ("thanh pho", "tinh", "tp", "quan", "huyen", "thi xa", "thi tran", "phuong", "xa")
_NOT_WORD = re.compile(r"[^a-z0-9]+")
_LEADING_ZEROS = re.compile(r"\b0+(\d)")


def place_key(name: str) -> str:
    """A place's name as matched: "TP. Hồ Chí Minh" and "HỒ CHÍ MINH" → "ho chi minh",
    "Quận 01" and "QUẬN 1" → "1", "Phường Bến Nghé" → "ben nghe"."""
    words = _NOT_WORD.sub(" ", strip_diacritics(name).lower()).strip()
    for prefix in _PREFIXES:
        if words.startswith(prefix + " "):
            words = words[len(prefix) + 1 :]
            break
    return _LEADING_ZEROS.sub(r"\1", words)


class Unmatched(Exception):
    """An address part Viettel Post's lists have no single match for."""

    def __init__(self, part: str) -> None:
        super().__init__(part)
        self.part = part


class Unavailable(Exception):
    """Viettel Post did not answer as it should: the order waits."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.error)
        self.verdict = verdict


def match(
    rows: list[dict[str, Any]], id_field: str, name_fields: tuple[str, ...], name: str
) -> int:
    """The id of the one row whose name (or code) matches ``name``; Unmatched otherwise."""
    wanted = place_key(name)
    found = {
        row[id_field]
        for row in rows
        if wanted
        and any(isinstance(row.get(f), str) and place_key(row[f]) == wanted for f in name_fields)
    }
    if len(found) != 1:
        raise Unmatched(id_field)
    (only,) = found
    return int(only)


@dataclass(frozen=True)
class PlaceIds:
    province: int
    district: int
    ward: int


# -- the operator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pickup:
    """A pickup address registered on the account (listInventory)."""

    group_address_id: int
    customer_id: int
    name: str
    phone: str
    address: str
    province: int
    district: int
    ward: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Pickup:
        return cls(
            int(row["groupaddressId"]),
            int(row.get("cusId") or 0),
            str(row.get("name") or ""),
            str(row.get("phone") or ""),
            str(row.get("address") or ""),
            int(row.get("provinceId") or 0),
            int(row.get("districtId") or 0),
            int(row.get("wardsId") or 0),
        )


class ViettelPostOperator(HttpProvider):
    """A PostalOperator (adapters.postal) speaking Viettel Post's partner API."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        username: str,
        password: str,
        clock: Callable[[], datetime],
        pickup_id: int | None = None,
        pickup_ids: Mapping[str, int] | None = None,
        service_code: str = "VCN",
        address_ttl: timedelta = ADDRESS_TTL,
        **options: Any,
    ) -> None:
        super().__init__(name, base_url, ORDER_PATH, **options)
        self._base = base_url.rstrip("/")
        self._account = {"USERNAME": username, "PASSWORD": password}
        self._clock = clock
        self._pickup_id = pickup_id
        self._pickup_ids = dict(pickup_ids or {})
        self._service_code = service_code
        self._address_ttl = address_ttl
        self._token: str | None = None
        self._token_until = datetime.min.replace(tzinfo=UTC)
        self._lists: dict[str, tuple[datetime, list[dict[str, Any]]]] = {}

    @classmethod
    def from_settings(
        cls, name: str, settings: Settings, clock: Callable[[], datetime]
    ) -> ViettelPostOperator:
        """The operator MOTCUA_POSTAL_PROVIDER=viettelpost configures (Settings refuses it
        without the address and the account)."""
        s = settings
        assert s.postal_api_url and s.postal_username and s.postal_password
        return cls(
            name,
            s.postal_api_url,
            username=s.postal_username,
            password=s.postal_password.get_secret_value(),
            clock=clock,
            pickup_id=s.postal_pickup_id,
            pickup_ids=s.postal_pickup_ids,
            service_code=s.postal_service_code,
            rate_per_second=s.postal_rate_per_second,
            burst=max(1, int(s.postal_rate_per_second)),
            timeout_seconds=s.sms_timeout_seconds,
        )

    # -- PostalOperator -----------------------------------------------------------------------

    async def place(self, order: PostalOrderRequest) -> OrderResult:
        try:
            body = await self._order_body(order)
            verdict = await self._create(body)
        except Unmatched as exc:
            return OrderResult("failed", error=f"viettelpost: address not matched ({exc.part})")
        except Unavailable as exc:
            v = exc.verdict
            return OrderResult(v.outcome, error=v.error, retry_after_seconds=v.retry_after_seconds)
        if verdict.outcome == "accepted" and not fits_tracking_code(verdict.value):
            return OrderResult("failed", error=TRACKING_CODE_TOO_LONG)
        return OrderResult(
            verdict.outcome,
            tracking_code=verdict.value,
            error=verdict.error,
            retry_after_seconds=verdict.retry_after_seconds,
        )

    async def check(self) -> tuple[bool, str]:
        """Sends no order: signs in and reads the pickup addresses, the default and each
        agency's (neither costs anything)."""
        try:
            pickup = await self._pickup()
            for agency in sorted(self._pickup_ids):
                await self._pickup(agency)
        except Unavailable as exc:
            return False, exc.verdict.error or "refused"
        agencies = "".join(
            f", {agency} {pickup_id}" for agency, pickup_id in sorted(self._pickup_ids.items())
        )
        return True, f"signed in; pickup address {pickup.group_address_id}{agencies}"

    # -- the order ----------------------------------------------------------------------------

    async def _order_body(self, order: PostalOrderRequest) -> dict[str, Any]:
        pickup = await self._pickup(order.agency_code)
        to = await self._place_ids(order.address)
        a = order.address
        parts = (a.get("street"), a.get("ward"), a.get("district"), a.get("province"))
        return {
            "ORDER_NUMBER": order.reference,
            "GROUPADDRESS_ID": pickup.group_address_id,
            "CUS_ID": pickup.customer_id,
            "SENDER_FULLNAME": pickup.name,
            "SENDER_ADDRESS": pickup.address,
            "SENDER_PHONE": pickup.phone,
            "SENDER_WARD": pickup.ward,
            "SENDER_DISTRICT": pickup.district,
            "SENDER_PROVINCE": pickup.province,
            "RECEIVER_FULLNAME": order.receiver_name,
            "RECEIVER_ADDRESS": ", ".join(p for p in parts if p),
            "RECEIVER_PHONE": national_phone(order.receiver_phone),
            "RECEIVER_WARDS": to.ward,
            "RECEIVER_DISTRICT": to.district,
            "RECEIVER_PROVINCE": to.province,
            "PRODUCT_NAME": order.content,
            "PRODUCT_DESCRIPTION": order.content,
            "PRODUCT_QUANTITY": 1,
            "PRODUCT_PRICE": 0,
            "PRODUCT_WEIGHT": PRODUCT_WEIGHT_GRAMS,
            "PRODUCT_TYPE": PRODUCT_TYPE,
            "ORDER_PAYMENT": SENDER_PAYS,
            "ORDER_SERVICE": self._service_code,
            "ORDER_SERVICE_ADD": "",
            "ORDER_NOTE": "",
            "MONEY_COLLECTION": order.cod_amount,
        }

    async def _create(self, body: dict[str, Any]) -> Verdict:
        """createOrder; a token refused is renewed and the order sent again, once."""
        for renewed in (False, True):
            token = await self._signed_in(renew=renewed)
            answer = await self.post(body, headers={"Token": token})
            if isinstance(answer, Verdict):
                return answer
            if not refuses_token(answer, envelope_of(answer)):
                return order_verdict(answer)
        return Verdict("retry", error="viettelpost: token refused after renewal")

    # -- the account --------------------------------------------------------------------------

    async def _signed_in(self, *, renew: bool = False) -> str:
        now = self._clock()
        if self._token and not renew and now < self._token_until - TOKEN_MARGIN:
            return self._token
        self._token = None
        answer = await send_json(
            self._client, self._base + LOGIN_PATH, self._account, self._timeout
        )
        if isinstance(answer, Verdict):
            raise Unavailable(answer)
        unwell = _unavailable(answer)
        if unwell is not None:
            raise Unavailable(unwell)
        envelope = envelope_of(answer)
        data = envelope.data if envelope and isinstance(envelope.data, dict) else {}
        token = data.get("token")
        if envelope is None or envelope.error or not isinstance(token, str) or not token:
            # The account, not the order: whoever runs motcua can mend it; the order waits.
            status = envelope.status if envelope else answer.status_code
            raise Unavailable(Verdict("retry", error=f"viettelpost {status}: sign-in refused"))
        self._token, self._token_until = token, _token_end(data.get("expired"), now)
        return token

    async def _pickup(self, agency_code: str | None = None) -> Pickup:
        """The agency's own pickup address if it has one, else the account's default."""
        rows = await self._list(INVENTORY_PATH)
        pickups = [Pickup.of(r) for r in rows if isinstance(r.get("groupaddressId"), int)]
        wanted = self._pickup_ids.get(agency_code or "", self._pickup_id)
        if wanted is not None:
            pickups = [p for p in pickups if p.group_address_id == wanted]
        if not pickups:
            # Registered on Viettel Post's site, not here: the order waits until it is.
            which = f" ({wanted})" if wanted is not None else ""
            raise Unavailable(Verdict("retry", error=f"viettelpost: no such pickup address{which}"))
        return pickups[0]

    # -- lookups ------------------------------------------------------------------------------

    async def _place_ids(self, address: Mapping[str, str]) -> PlaceIds:
        provinces = await self._list(PROVINCES_PATH)
        province = match(
            provinces,
            "PROVINCE_ID",
            ("PROVINCE_NAME", "PROVINCE_CODE"),
            address.get("province", ""),
        )
        districts = await self._list(DISTRICTS_PATH.format(province))
        district = match(districts, "DISTRICT_ID", ("DISTRICT_NAME",), address.get("district", ""))
        wards = await self._list(WARDS_PATH.format(district))
        ward = match(wards, "WARDS_ID", ("WARDS_NAME",), address.get("ward", ""))
        return PlaceIds(province, district, ward)

    async def _list(self, path: str) -> list[dict[str, Any]]:
        """One of Viettel Post's lists, from the cache while it is fresh."""
        now = self._clock()
        cached = self._lists.get(path)
        if cached is not None and now - cached[0] < self._address_ttl:
            return cached[1]
        for renewed in (False, True):
            token = await self._signed_in(renew=renewed)
            answer = await send_json(
                self._client,
                self._base + path,
                None,
                self._timeout,
                method="GET",
                headers={"Token": token},
            )
            if isinstance(answer, Verdict):
                raise Unavailable(answer)
            envelope = envelope_of(answer)
            if not refuses_token(answer, envelope):
                break
        else:
            raise Unavailable(Verdict("retry", error="viettelpost: token refused after renewal"))
        unwell = _unavailable(answer)
        if unwell is not None:
            raise Unavailable(unwell)
        if envelope is None or envelope.error or not isinstance(envelope.data, list):
            status = envelope.status if envelope else answer.status_code
            raise Unavailable(Verdict("retry", error=f"viettelpost {status}: list not read"))
        rows = [r for r in envelope.data if isinstance(r, dict)]
        self._lists[path] = (now, rows)
        return rows


def _token_end(expired: Any, now: datetime) -> datetime:
    """``data.expired``, milliseconds since the epoch; unreadable: the fallback lifetime."""
    if isinstance(expired, int | float) and not isinstance(expired, bool) and expired > 0:
        try:
            return datetime.fromtimestamp(expired / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    return now + TOKEN_FALLBACK_LIFETIME
