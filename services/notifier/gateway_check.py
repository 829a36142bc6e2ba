"""`motcua gateways check`: can the notifier reach its providers, with the credentials it has?
Nothing is sent: a provider that offers a balance or profile call is asked it (eSMS's
balance, and with Zalo whether the Official Account is on the account; Viettel Post's sign-in
and its pickup address); one that does not is only reached (any HTTP answer means the
address works)."""

from __future__ import annotations

import httpx

from services.core.runtime.clock import system_clock
from services.core.runtime.settings import Settings
from services.notifier.adapters.esms import EsmsGateway, EsmsZalo
from services.notifier.adapters.viettelpost import ViettelPostOperator

Result = tuple[str, bool, str]  # (gateway, ok, what was found: no secret, no personal data)


async def check_gateways(settings: Settings) -> list[Result]:
    s = settings
    results: list[Result] = []
    sms = [
        (n, u)
        for n, u in (("sms", s.sms_gateway_url), ("sms fallback", s.sms_gateway_fallback_url))
        if u
    ]
    if not sms:
        results.append(("sms", True, f"no gateway: written to {s.outbox_dir / 'sms.jsonl'}"))
    for name, url in sms:
        if s.sms_provider == "esms":
            client = EsmsGateway.from_settings(name, url, s)
            try:
                ok, said = await client.check()
            finally:
                await client.aclose()
            results.append((f"{name} (esms)", ok, said))
        else:
            results.append((name, *await _reachable(url)))
    zalo = EsmsZalo.from_settings(s)
    if zalo is not None:
        try:
            ok, said = await zalo.check()
        finally:
            await zalo.aclose()
        results.append(("zalo (esms)", ok, said))
    if s.postal_api_url and s.postal_provider == "viettelpost":
        operator = ViettelPostOperator.from_settings("postal", s, system_clock)
        try:
            ok, said = await operator.check()
        finally:
            await operator.aclose()
        results.append(("postal (viettelpost)", ok, said))
    elif s.postal_api_url:
        results.append(("postal", *await _reachable(s.postal_api_url)))
    else:
        results.append(("postal", True, f"no operator: written to {s.outbox_dir / 'postal.jsonl'}"))
    return results


async def _reachable(url: str) -> tuple[bool, str]:
    """The generic protocols offer no credential check: an HTTP answer shows the address
    works (the first send shows whether the provider takes our requests)."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
    except httpx.HTTPError as exc:
        return False, f"unreachable ({type(exc).__name__})"
    return True, f"reachable (HTTP {response.status_code}; no credential check in this protocol)"
