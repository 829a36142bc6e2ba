"""Which channel tells a notice: Zalo (a ZNS message from the office's Official Account) first
when its kind has a template registered for it, the SMS when Zalo cannot.

One notice, one effect: the citizen must never be told the same fact twice. So the SMS is sent
only once the ZNS is known not to have reached her, and the notice then stays on the SMS: a
report about the ZNS that comes after is written in the notice's history and changes nothing.
The ZNS is known to have failed when

- the provider refuses it for good (the citizen has no Zalo, the template is not registered…),
- or refuses it for now without having taken it (an HTTP 5xx, a refused connection, an
  account problem): the SMS is then the faster way, and nothing of the ZNS went out;
- or its delivery report says failed;
- or no delivery report came within ``report_wait`` of its acceptance (a report lost, or
  Zalo slow): a bound, so that no citizen waits for ever; the price is that a ZNS delivered
  later than that may be followed by the SMS (the late report is recorded).

After a timeout the provider may have taken the ZNS: it is sent again, same request id, and
the provider recognises it, until an answer says what became of it (or the retries give up:
then the SMS goes, as for a missing report).

The states of a notice with a ZNS (its ``status`` and ``channel`` columns)::

    pending/zalo → sending/zalo → accepted/zalo → delivered/zalo
                                     ↘ (failed, refused, no report in time)
                                       pending/sms → sending/sms → accepted/sms → delivered/sms
                                                                              ↘ failed/sms

Pure: the dispatcher and the callbacks ask these functions, the repository writes the moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Literal

from services.notifier.domain.notices import NOTICE_SPECS, PLACEHOLDER_LIMITS, NoticeKey
from services.notifier.domain.templates import Value, fit_value, value_text

Channel = Literal["zalo", "sms"]
ZALO: Channel = "zalo"
SMS: Channel = "sms"

# History statuses of the Zalo leg (notifier_notice_history.status), beside those of any
# notice (pending, held, accepted, retry, delivered, failed, skipped).
FALLBACK = "sms_fallback"  # the ZNS did not reach the citizen: the SMS goes instead
LATE = "zalo_late"  # a ZNS report after the SMS was chosen: recorded, nothing else

# While a notice is on these, a report about it is awaited or may still come.
_OPEN = ("pending", "sending", "accepted")


# -- configuration --------------------------------------------------------------------------


@dataclass(frozen=True)
class ZaloTemplate:
    """A ZNS template approved by Zalo and registered with the provider: its id, and which of
    our placeholders fills which of its parameters."""

    template_id: str
    params: Mapping[str, str]  # our placeholder → the template's parameter name


@dataclass(frozen=True)
class ZaloSetup:
    """The office's Official Account, its templates by notice kind, and how long a ZNS
    accepted may go without a delivery report before the SMS goes instead."""

    oa_id: str
    templates: Mapping[str, ZaloTemplate]
    report_wait: timedelta

    def zns(self, key: str, values: Mapping[str, Value]) -> dict[str, object] | None:
        """What the ZNS of a notice carries (its template and parameters), or None when its
        kind has no template: the notice goes by SMS only. Values are worded as in the SMS,
        one line each, cut to their placeholder's limit (a code is never longer)."""
        template = self.templates.get(key)
        if template is None:
            return None
        params = {
            # An optional placeholder without a value (a digest with no overdue dossier)
            # is empty: the template still has the parameter.
            theirs: fit_value(value_text(key, ours, values[ours]), PLACEHOLDER_LIMITS[ours], True)
            if ours in values
            else ""
            for ours, theirs in template.params.items()
        }
        return {"template": template.template_id, "params": params}


def zalo_setup(
    oa_id: str, raw: Mapping[str, Mapping[str, object]], report_wait: timedelta
) -> ZaloSetup:
    """``MOTCUA_ZALO_TEMPLATES`` read: kind → {"template": id, "params": {ours: theirs}}.
    Refused with a ValueError naming the kind and what is wrong: an unknown kind, no template
    id, a placeholder the kind does not have (NOTICE_SPECS), a parameter name that is empty."""
    templates: dict[str, ZaloTemplate] = {}
    for kind, entry in raw.items():
        where = f"MOTCUA_ZALO_TEMPLATES[{kind!r}]"
        if kind not in set(NoticeKey):
            raise ValueError(f"{where}: unknown notice kind; known: {', '.join(NoticeKey)}")
        template_id, params = entry.get("template"), entry.get("params", {})
        if not isinstance(template_id, str | int) or not str(template_id).strip():
            raise ValueError(f'{where}: needs "template", the ZNS template id')
        if not isinstance(params, Mapping):
            raise ValueError(f'{where}: "params" must map our placeholders to its parameters')
        allowed = NOTICE_SPECS[NoticeKey(kind)].allowed
        for ours, theirs in params.items():
            if ours not in allowed:
                names = ", ".join(sorted(allowed))
                raise ValueError(f"{where}: no placeholder {ours!r} in this notice; it has {names}")
            if not isinstance(theirs, str) or not theirs.strip():
                raise ValueError(f"{where}: the parameter for {ours!r} needs a name")
        templates[kind] = ZaloTemplate(str(template_id).strip(), MappingProxyType(dict(params)))
    return ZaloSetup(oa_id, MappingProxyType(templates), report_wait)


# -- moves ----------------------------------------------------------------------------------


class Effect(StrEnum):
    """What a report about a notice's message does."""

    APPLY = "apply"  # the notice moves (status, channel)
    RECORD = "record"  # a history row only: the report came after the SMS was chosen
    KEEP = "keep"  # too early: the send's answer is not recorded yet; kept for when it is
    IGNORE = "ignore"  # already told (a report repeated, or about a notice done with)


@dataclass(frozen=True)
class Move:
    """A notice's next state and the history row that says why."""

    status: str
    channel: Channel
    history: str
    detail: str | None = None
    next_attempt_at: datetime | None = None
    # The SMS starts afresh: its own attempts and retry horizon, whatever the ZNS spent.
    restart: bool = False
    effect: Effect = Effect.APPLY


def fall_back(now: datetime, why: str) -> Move:
    """The ZNS is known not to have reached the citizen: the SMS goes, now."""
    return Move("pending", SMS, FALLBACK, why, next_attempt_at=now, restart=True)


def after_zalo_answer(
    outcome: str,
    error: str | None,
    maybe_taken: bool,
    now: datetime,
    report_wait: timedelta,
    retry_at: datetime | None,
    first_attempt_at: datetime | None = None,
) -> Move:
    """What the provider's answer to a ZNS makes of the notice. ``retry_at`` is when to send
    it again after a timeout (None: the retries are spent). The ZNS is not retried past
    ``report_wait`` from its first attempt: the citizen waits no longer for a ZNS that may
    never have gone than for the report of one that went."""
    if outcome == "accepted":
        return Move("accepted", ZALO, "accepted", ZALO, next_attempt_at=now + report_wait)
    why = f"zalo: {error or outcome}"
    if retry_at is not None and retry_at > (first_attempt_at or now) + report_wait:
        retry_at = None
    if outcome == "retry" and maybe_taken and retry_at is not None:
        # It may have gone: only the same request again can tell (the provider knows its id).
        return Move("pending", ZALO, "retry", why, next_attempt_at=retry_at)
    return fall_back(now, why)


def report_overdue(now: datetime, report_wait: timedelta) -> Move:
    seconds = int(report_wait.total_seconds())
    return fall_back(now, f"zalo: no delivery report within {seconds} s")


def after_report(
    status: str,
    channel: Channel,
    about: Channel,
    delivered: bool,
    error: str | None,
    now: datetime,
) -> Move:
    """A delivery report about the notice's message on channel ``about``, the notice being
    ``status`` on ``channel``."""
    told = "delivered" if delivered else "failed"
    if about == ZALO and channel == SMS:
        return Move(status, channel, LATE, f"zalo {told}", effect=Effect.RECORD)
    if status not in _OPEN or about != channel:
        return Move(status, channel, told, effect=Effect.IGNORE)
    if about == ZALO:
        if status != "accepted":
            return Move(status, channel, told, effect=Effect.KEEP)
        if not delivered:
            return fall_back(now, error or "zalo: not delivered")
    return Move(told, channel, told, error if not delivered else channel)
