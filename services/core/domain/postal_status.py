"""Trạng thái bưu gửi: which status the postal operator reports may replace the one known. Pure.

The notifier (which hears the operator) and the intake (which shows the parcel on the dossier
and returns it on delivery) both follow one parcel through this rule, so they agree.

A parcel is picked up (đã lấy hàng), carried (đang vận chuyển), and ends once: delivered (phát
thành công: the result reached the citizen), failed (phát không thành công) or returned
(chuyển hoàn: back at the agency). Only a move forward is taken: a status told again, one
behind the known one, or anything after an end is a late, repeated or forged report. Taking
it could hand back a dossier already counted as failed, or alert the supervisors of a parcel
the citizen already has.
"""

from __future__ import annotations

from typing import Literal

PostalStatus = Literal["picked_up", "in_transit", "delivered", "failed", "returned"]

FINAL: frozenset[str] = frozenset({"delivered", "failed", "returned"})
# How far along the parcel is; every end is as far as it goes.
_STAGE: dict[str, int] = {
    "picked_up": 1,
    "in_transit": 2,
    "delivered": 3,
    "failed": 3,
    "returned": 3,
}


def is_final(status: str | None) -> bool:
    return status in FINAL


def moves_forward(known: str | None, reported: str) -> bool:
    """Whether the operator's ``reported`` status replaces ``known`` (None: none yet)."""
    if reported not in _STAGE:
        raise ValueError(f"not a postal status: {reported!r}")
    if known is None:
        return True
    if known in FINAL:
        return False
    return _STAGE[reported] > _STAGE.get(known, 0)
