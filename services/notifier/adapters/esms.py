"""eSMS (esms.vn, VIHAT): SMS brandname, customer-care class (tin chăm sóc khách hàng, SmsType 2).

Sending: ``POST {base}/MainService.svc/json/SendMultipleMessage_V4_post_json/`` with a JSON body
(ApiKey, SecretKey, Brandname, Phone, Content, SmsType "2", IsUnicode, Sandbox, RequestId,
CallbackUrl). eSMS answers HTTP 200 whatever happened: the outcome is its ``CodeResult``
(``ESMS_CODES``). ``RequestId`` is our notice id: eSMS refuses a second request with the same
one (code 124), which is what makes a resend after a crash safe.

Delivery: eSMS calls ``CallbackUrl`` with an HTTP GET once the message's status is final
(``SMSID``, ``SendStatus``, ``SendSuccess``, ``SendFailed``, ``RequestId``…; see
``receipt_of``). It appends its own query string, so our token travels in the path, not in
``?token=`` (api/callbacks.py).

Checking: ``POST {base}/MainService.svc/json/GetBalance_json`` with the keys answers the
balance, or 101 for wrong keys (``check``).

Zalo (``EsmsZalo``): ``POST {base}/MainService.svc/json/SendZaloMessage_V6/`` sends a ZNS
message from the office's Official Account (``OAID``) with a template approved by Zalo and
registered with eSMS (``TempID``), its parameters in ``TempData`` (an object, parameter name →
value), the same ``RequestId`` de-duplication (valid for the day) and ``CallbackUrl``. The
answers are the same ``CodeResult``s, with Zalo's own (``ZNS_CODES``). Its report comes to the
same callback, ``TypeId`` 24 or 25, with Zalo's error in ``error_info`` (e.g. -114: the user is
inactive or refused it). Whether the OA is on the account: ``ZNS/GetListZOA``.

Public documentation: github.com/devesms/gitbook_esms_for_develop_v2_en ("Send OTP/Customer
care message", "Send message via Zalo", "Callback Url", "Table of error codes", "Get balance",
"Get list OA"), and its Vietnamese twin gitbook_esms_for_develop_v2 ("Tin nhắn Zalo", V6).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.core.runtime.settings import Settings
from services.notifier.adapters.http_calls import (
    HttpClient,
    HttpProvider,
    Outcome,
    Response,
    Verdict,
    json_object,
    send_json,
)
from services.notifier.adapters.sms_gateway import SendResult, SmsRequest

SEND_PATH = "/MainService.svc/json/SendMultipleMessage_V4_post_json/"
BALANCE_PATH = "/MainService.svc/json/GetBalance_json"
ZNS_PATH = "/MainService.svc/json/SendZaloMessage_V6/"
OA_LIST_PATH = "/MainService.svc/json/ZNS/GetListZOA/"
# A ZNS's RequestId: the notice's id behind this prefix, so that it is not the SMS's, which
# eSMS would refuse as a duplicate (124) when the SMS follows a ZNS that failed.
ZALO_REQUEST_PREFIX = "zalo-"
ZALO_TYPE_IDS = frozenset({"24", "25"})  # a callback's TypeId for ZNS (priority, normal)
CUSTOMER_CARE = "2"
# A resend that eSMS recognised (124) may not carry the first message's SMSID: the notice is
# then known by its request id, which eSMS's callback also carries.
REQUEST_ID_PREFIX = "esms-request:"

# CodeResult → what it means for the notice. Ours, not eSMS's wording: a provider's message
# could quote what it was sent, and these are stored and logged.
ESMS_CODES: dict[str, tuple[Outcome, str]] = {
    "100": ("accepted", "accepted"),
    "124": ("accepted", "duplicate request id: sent before"),
    # The account, not the message: whoever runs motcua can mend it, and the notice waits
    # (retried with backoff until MOTCUA_SMS_RETRY_HORIZON_HOURS) instead of being lost.
    "101": ("retry", "wrong ApiKey or SecretKey"),
    "102": ("retry", "no price list on the account"),
    "103": ("retry", "balance too low"),
    "140": ("retry", "this server's IP is not whitelisted"),
    # The message cannot go as it is.
    "99": ("failed", "phone number blocked"),
    "104": ("failed", "brandname not registered"),
    "108": ("failed", "phone number not valid"),
    "146": ("failed", "text does not match a registered customer-care template"),
    "177": ("failed", "carrier not registered for this brandname"),
    "300": ("failed", "message type missing"),
}


# What eSMS answers only of a ZNS. Every one sends the SMS instead (notifier.domain.channels).
ZNS_CODES: dict[str, tuple[Outcome, str]] = {
    **ESMS_CODES,
    "110": ("failed", "request data not valid"),
    "204": ("failed", "OA not known to eSMS"),
    "789": ("failed", "template not configured for this OA"),
    "790": ("failed", "parameters do not match the ZNS template"),
    "791": ("failed", "OA id or template id missing"),
    "799": ("failed", "OA not active, or not on this account"),
}


def esms_phone(e164: str) -> str:
    """eSMS takes Vietnamese numbers in the national form: +84912345678 → 0912345678."""
    return "0" + e164[3:] if e164.startswith("+84") else e164.lstrip("+")


def verdict_of(
    response: Response, request_id: str, codes: Mapping[str, tuple[Outcome, str]] = ESMS_CODES
) -> Verdict:
    """What an eSMS answer says of one send (an SMS, or a ZNS with ``ZNS_CODES``)."""
    # eSMS answers 200 whatever became of the message: any other status is eSMS unwell.
    if response.status_code != 200:
        return Verdict("retry", error=f"esms HTTP {response.status_code}")
    body = json_object(response)
    if body is None:
        return Verdict("retry", error="esms malformed answer")
    code = str(body.get("CodeResult", ""))
    outcome, meaning = codes.get(code, ("failed", "unknown answer"))
    if outcome != "accepted":
        return Verdict(outcome, error=f"esms {code or '-'}: {meaning}"[:200])
    sms_id = body.get("SMSID")
    if isinstance(sms_id, str) and sms_id:
        return Verdict("accepted", value=sms_id[:100])
    if code == "124":
        return Verdict("accepted", value=REQUEST_ID_PREFIX + request_id)
    return Verdict("retry", error="esms 100 without an SMSID")


class EsmsGateway(HttpProvider):
    """An SmsGateway (adapters.sms_gateway) speaking eSMS's customer-care send API."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        api_key: str,
        secret_key: str,
        sandbox: bool = False,
        **options: Any,
    ) -> None:
        super().__init__(name, base_url, SEND_PATH, **options)
        self._base = base_url.rstrip("/")
        self._keys = {"ApiKey": api_key, "SecretKey": secret_key}
        self._sandbox = sandbox

    @classmethod
    def from_settings(cls, name: str, url: str, settings: Settings) -> EsmsGateway:
        """The gateway MOTCUA_SMS_PROVIDER=esms configures (Settings refuses it without keys)."""
        return cls(name, url, **_account(settings))

    def body(self, request: SmsRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self._keys,
            "Content": request.text,
            "Phone": esms_phone(request.to),
            "Brandname": request.sender,
            "SmsType": CUSTOMER_CARE,
            "IsUnicode": "1" if request.unicode else "0",
            "Sandbox": "1" if self._sandbox else "0",
            "RequestId": request.request_id,
        }
        if request.callback_url:
            body["CallbackUrl"] = request.callback_url
        return body

    async def send(self, request: SmsRequest) -> SendResult:
        answer = await self.post(self.body(request))
        verdict = answer if isinstance(answer, Verdict) else verdict_of(answer, request.request_id)
        return SendResult.of(verdict, self.name)

    async def check(self) -> tuple[bool, str]:
        """Sends nothing: whether the keys and the address work (the balance), or why not."""
        body = await _ask(self._client, self._base + BALANCE_PATH, self._keys, "CodeResponse")
        if isinstance(body, str):
            return False, body
        return True, f"balance {body.get('Balance')}"


@dataclass(frozen=True)
class ZnsRequest:
    """One ZNS: to whom, which template with which parameters, our notice's id."""

    to: str  # E.164
    template_id: str
    params: Mapping[str, str]
    request_id: str
    callback_url: str | None


class EsmsZalo(HttpProvider):
    """Zalo ZNS through eSMS, from one Official Account."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str,
        secret_key: str,
        oa_id: str,
        sandbox: bool = False,
        **options: Any,
    ) -> None:
        super().__init__("zalo", base_url, ZNS_PATH, **options)
        self._base = base_url.rstrip("/")
        self._keys = {"ApiKey": api_key, "SecretKey": secret_key}
        self._oa_id = oa_id
        self._sandbox = sandbox

    @classmethod
    def from_settings(cls, settings: Settings) -> EsmsZalo | None:
        """Through the primary eSMS address; None when Zalo is not configured."""
        s = settings
        if not s.zalo_oa_id or s.sms_provider != "esms" or not s.sms_gateway_url:
            return None
        return cls(s.sms_gateway_url, oa_id=s.zalo_oa_id, **_account(s))

    def body(self, request: ZnsRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            **self._keys,
            "OAID": self._oa_id,
            "Phone": esms_phone(request.to),
            "TempID": request.template_id,
            "TempData": dict(request.params),
            "Sandbox": "1" if self._sandbox else "0",
            "RequestId": ZALO_REQUEST_PREFIX + request.request_id,
        }
        if request.callback_url:
            body["CallbackUrl"] = request.callback_url
        return body

    async def send(self, request: ZnsRequest) -> SendResult:
        answer = await self.post(self.body(request))
        if isinstance(answer, Verdict):
            return SendResult.of(answer, self.name)
        request_id = ZALO_REQUEST_PREFIX + request.request_id
        return SendResult.of(verdict_of(answer, request_id, ZNS_CODES), self.name)

    async def check(self) -> tuple[bool, str]:
        """Sends nothing: whether the Official Account is on the eSMS account."""
        body = await _ask(self._client, self._base + OA_LIST_PATH, self._keys, "CodeResult")
        if isinstance(body, str):
            return False, body
        accounts = body.get("ZOAList") or []
        for oa in accounts if isinstance(accounts, list) else []:
            if isinstance(oa, dict) and str(oa.get("OAID")) == self._oa_id:
                return True, f"official account {self._oa_id} ({oa.get('OAName')})"
        return False, f"official account {self._oa_id} is not on this eSMS account"


def _account(settings: Settings) -> dict[str, Any]:
    """What an eSMS client takes from the settings (Settings refuses esms without its keys)."""
    s = settings
    assert s.sms_api_key and s.sms_secret_key
    return {
        "api_key": s.sms_api_key.get_secret_value(),
        "secret_key": s.sms_secret_key.get_secret_value(),
        "sandbox": s.sms_sandbox,
        "rate_per_second": s.sms_rate_per_second,
        "burst": max(1, int(s.sms_rate_per_second)),
        "timeout_seconds": s.sms_timeout_seconds,
    }


async def _ask(
    client: HttpClient, url: str, keys: dict[str, str], code_field: str
) -> dict[str, Any] | str:
    """One of eSMS's calls that send nothing: its answer when it says 100, or why not."""
    answer = await send_json(client, url, keys, 10.0)
    if isinstance(answer, Verdict):
        return f"unreachable: {answer.error}"
    body = json_object(answer)
    if body is None:
        return f"unexpected answer: HTTP {answer.status_code}"
    code = str(body.get(code_field, ""))
    if code != "100":
        return f"refused: esms {code or answer.status_code}"
    return body


def request_of(request_id: str) -> tuple[str, bool]:
    """A callback's RequestId: our notice's id, and whether it was the ZNS's."""
    if request_id.startswith(ZALO_REQUEST_PREFIX):
        return request_id.removeprefix(ZALO_REQUEST_PREFIX), True
    return request_id, False


_ZALO_ERROR = re.compile(r'error\\*"?\s*:\s*(-?\d{1,4})\b')


def zalo_error(error_info: str) -> str | None:
    """Zalo's error code in a ZNS callback's ``error_info`` (JSON, sometimes quoted twice):
    "zalo -114"; None when there is none or it is 0 (success)."""
    found = _ZALO_ERROR.search(error_info)
    if found is None or found.group(1) == "0":
        return None
    return f"zalo {found.group(1)}"


ReceiptStatus = Literal["delivered", "failed"]


@dataclass(frozen=True)
class EsmsReceipt:
    """What an eSMS callback says of a message, when its status is final."""

    status: ReceiptStatus
    error: str | None = None


def receipt_of(send_status: str, sent_ok: int, sent_failed: int) -> EsmsReceipt | None:
    """``SendStatus`` 5 is "processed": delivered if it reached the phone (SendSuccess), failed
    if not (SendFailed); 4 is refused. 1, 2 and 7 are on the way: not final, None."""
    if send_status == "4":
        return EsmsReceipt("failed", "esms: rejected")
    if send_status == "5":
        if sent_ok > 0:
            return EsmsReceipt("delivered")
        if sent_failed > 0:
            return EsmsReceipt("failed", "esms: not delivered to the phone")
    return None
