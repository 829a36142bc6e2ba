"""What the lookup page tells a citizen of her dossier, in plain Vietnamese. Pure: a dossier in,
words and dates out.

Nothing personal is shown (no name, phone, ID number or address): whoever holds the slip, or
reads the SMS over her shoulder, learns where the dossier stands and nothing about her. The
clerk's reason is shown for a refusal only (the citizen must know why, and the SMS already
told her); the other reasons are the office's notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.events import DossierStatus
from services.core.domain.clock_state import parse_dt
from services.core.domain.lifecycle import Action
from services.core.domain.vn_time import minute_text
from services.intake.domain.model import Dossier, HistoryEntry
from services.intake.domain.postal import Postal

S = DossierStatus
RECEIVE = "receive"  # the history's first entry (Dossier.receive), not a clerk's Action


@dataclass(frozen=True)
class StatusWords:
    title: str  # a few words, the page's headline
    meaning: str  # what it means for the citizen, and what to do
    tone: str  # "ok", "wait", "act" or "end": the colour of the headline


STATUS_WORDS: Mapping[DossierStatus, StatusWords] = {
    S.RECEIVED: StatusWords(
        "Đã tiếp nhận",
        "Hồ sơ đã được tiếp nhận đầy đủ và đang chờ chuyển đến bộ phận giải quyết.",
        "ok",
    ),
    S.IN_PROGRESS: StatusWords(
        "Đang giải quyết", "Hồ sơ đang được cơ quan có thẩm quyền xem xét, giải quyết.", "ok"
    ),
    S.TRANSFERRED: StatusWords(
        "Đang giải quyết",
        "Hồ sơ đã được chuyển đến cơ quan phối hợp để giải quyết phần việc của cơ quan đó.",
        "ok",
    ),
    S.AWAITING_SUPPLEMENT: StatusWords(
        "Cần bổ sung hồ sơ",
        "Hồ sơ còn thiếu giấy tờ. Ông/bà vui lòng nộp bổ sung các giấy tờ dưới đây tại Bộ "
        "phận Một cửa. Thời hạn giải quyết được tính lại từ đầu khi nhận đủ hồ sơ.",
        "act",
    ),
    S.PAUSED: StatusWords(
        "Tạm dừng giải quyết",
        "Việc giải quyết hồ sơ đang tạm dừng; thời gian còn lại được giữ nguyên và tiếp tục "
        "tính khi giải quyết trở lại.",
        "wait",
    ),
    S.RESULT_READY: StatusWords("Đã có kết quả", "", "ok"),
    S.RETURNED: StatusWords("Đã trả kết quả", "Hồ sơ đã hoàn thành và đã trả kết quả.", "end"),
    S.REJECTED: StatusWords(
        "Không đủ điều kiện giải quyết",
        "Hồ sơ không được giải quyết. Ông/bà có thể liên hệ Bộ phận Một cửa để được hướng dẫn.",
        "act",
    ),
    S.WITHDRAWN: StatusWords(
        "Đã rút hồ sơ", "Hồ sơ đã được rút theo đề nghị của người nộp.", "end"
    ),
}

RESULT_READY_MEANING = {
    "counter": "Mời ông/bà mang giấy hẹn trả kết quả đến Bộ phận Một cửa để nhận kết quả.",
    "postal": "Kết quả được gửi đến ông/bà qua bưu điện (bưu chính công ích).",
}

STEP_TITLES: Mapping[str, str] = {
    RECEIVE: "Tiếp nhận hồ sơ",
    Action.START: "Chuyển bộ phận giải quyết",
    Action.TRANSFER: "Chuyển cơ quan phối hợp giải quyết",
    Action.REQUEST_SUPPLEMENT: "Yêu cầu bổ sung hồ sơ",
    Action.RECEIVE_SUPPLEMENT: "Nhận đủ hồ sơ bổ sung",
    Action.PAUSE: "Tạm dừng giải quyết",
    Action.RESUME: "Tiếp tục giải quyết",
    Action.EXTEND: "Hẹn lại ngày trả kết quả",
    Action.COMPLETE: "Có kết quả giải quyết",
    Action.RETURN: "Trả kết quả",
    Action.REJECT: "Từ chối giải quyết",
    Action.WITHDRAW: "Rút hồ sơ",
}

POSTAL_WORDS: Mapping[str | None, str] = {
    None: "Đã gửi yêu cầu chuyển phát",
    "picked_up": "Bưu điện đã nhận bưu gửi",
    "in_transit": "Đang vận chuyển",
    "delivered": "Đã phát thành công",
    "failed": "Phát không thành công: vui lòng liên hệ Bộ phận Một cửa",
    "returned": "Bưu gửi bị chuyển hoàn về cơ quan: vui lòng liên hệ Bộ phận Một cửa",
}


@dataclass(frozen=True)
class Step:
    at: str  # "HH:MM dd/mm/yyyy", Vietnam time
    at_iso: str  # for <time datetime=...>
    title: str
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class PostalView:
    tracking_code: str
    status: str
    at: str | None


@dataclass(frozen=True)
class LookupView:
    code: str
    procedure: str
    status: StatusWords
    received_at: str
    appointment: str | None  # hẹn trả kết quả, while one is in force
    missing: tuple[str, ...]  # what to bring, while a supplement is asked
    postal: PostalView | None
    steps: tuple[Step, ...] = field(default=())


def citizen_view(dossier: Dossier, due_at: datetime | None, postal: Postal | None) -> LookupView:
    """The page's account of ``dossier``; ``due_at`` is the appointment the clerks' lists show
    (the read model's), ``postal`` the postal return once ordered."""
    words = STATUS_WORDS[dossier.status]
    if dossier.status is S.RESULT_READY:
        words = StatusWords(words.title, RESULT_READY_MEANING[dossier.return_method], words.tone)
    open_ = dossier.status not in (S.RETURNED, S.REJECTED, S.WITHDRAWN)
    return LookupView(
        code=dossier.code,
        procedure=dossier.procedure.name,
        status=words,
        received_at=minute_text(dossier.received_at),
        appointment=minute_text(due_at) if due_at is not None and open_ else None,
        missing=_missing(dossier),
        postal=_postal(postal),
        steps=tuple(_step(entry) for entry in reversed(dossier.history)),
    )


def _missing(dossier: Dossier) -> tuple[str, ...]:
    if dossier.status is not S.AWAITING_SUPPLEMENT:
        return ()
    for entry in reversed(dossier.history):
        if entry.action == Action.REQUEST_SUPPLEMENT:
            return _items(entry.details)
    return ()


def _items(details: Mapping[str, Any]) -> tuple[str, ...]:
    items = details.get("items") or ()
    return tuple(str(item) for item in items)


def _step(entry: HistoryEntry) -> Step:
    title = STEP_TITLES.get(entry.action, entry.action)
    details: tuple[str, ...] = ()
    due = parse_dt(entry.details.get("due_at"))
    if entry.action == Action.REQUEST_SUPPLEMENT:
        details = tuple(f"Cần bổ sung: {item}" for item in _items(entry.details))
    elif entry.action == Action.REJECT and entry.details.get("reason"):
        details = (f"Lý do: {entry.details['reason']}",)
    elif due is not None:  # the receipt, the supplement's restart, a resume, an extension
        details = (f"Hẹn trả kết quả: {minute_text(due)}",)
    return Step(minute_text(entry.at), entry.at.isoformat(), title, details)


def _postal(postal: Postal | None) -> PostalView | None:
    if postal is None:
        return None
    at = minute_text(postal.status_at) if postal.status_at else None
    return PostalView(postal.tracking_code, POSTAL_WORDS[postal.status], at)
