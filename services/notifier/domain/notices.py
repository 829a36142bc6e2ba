"""The notices (loại tin nhắn) and their default Vietnamese texts.

What each notice may say: ``NOTICE_SPECS`` (required and optional placeholders) and
``PLACEHOLDER_LIMITS`` (the longest value each placeholder renders). How dates and lateness
are worded: ``appointment_text``, ``lateness_text``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from services.core.domain.codes import DOSSIER_CODE_MAX_LENGTH, TRACKING_CODE_MAX_LENGTH

# How late, in working time: in core, for the supervisors' dashboard says it as the texts do.
from services.core.domain.vn_time import lateness_text as lateness_text
from services.core.domain.vn_time import minute_text

# Segment caps (số tin nhắn tối đa) the default texts are built for. Unicode needs more: a
# Vietnamese sentence with diacritics is 67 characters a segment instead of 153.
DEFAULT_MAX_SEGMENTS_GSM7 = 2
DEFAULT_MAX_SEGMENTS_UNICODE = 4


class NoticeKey(StrEnum):
    """The notices the notifier sends (loại tin nhắn)."""

    RECEIVED = "received"  # tiếp nhận hồ sơ, with the appointment (hẹn trả kết quả)
    SUPPLEMENT_REQUESTED = "supplement_requested"  # yêu cầu bổ sung hồ sơ
    SUPPLEMENT_RECEIVED = "supplement_received"  # đã nhận hồ sơ bổ sung, new appointment
    REJECTED = "rejected"  # từ chối giải quyết
    RESULT_READY_COUNTER = "result_ready_counter"  # có kết quả, nhận tại Bộ phận Một cửa
    RESULT_READY_POSTAL = "result_ready_postal"  # có kết quả, gửi qua bưu chính
    EXTENDED = "extended"  # xin lỗi và hẹn lại ngày trả kết quả
    RETURNED = "returned"  # đã trả kết quả
    RETURNED_RATING = "returned_rating"  # đã trả kết quả, mời đánh giá mức độ hài lòng
    OVERDUE_ALERT = "overdue_alert"  # lãnh đạo: hồ sơ quá hạn
    STEP_OVERDUE = "step_overdue"  # lãnh đạo cơ quan phối hợp: quá hạn bước liên thông
    DAILY_DIGEST = "daily_digest"  # lãnh đạo: tổng hợp hằng ngày
    POSTAL_PROBLEM = "postal_problem"  # lãnh đạo: bưu gửi kết quả không phát được / chuyển hoàn


# Maximum rendered length, in characters, of each placeholder's value.
# The codes' are the longest a code can be (services.core.domain.codes), not a cut: a dossier
# or tracking code cut short is one nobody can look up, so ``CODE_PLACEHOLDERS`` are never cut
# and the templates are checked at start with them at their longest.
PLACEHOLDER_LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "office": 20,  # short sender name in the text, e.g. "UBND Q1"
        # Where to look a dossier up (tra cứu): MOTCUA_LOOKUP_URL, e.g. "dichvucong.gov.vn", at
        # most 40; the lookup page's address with the code is longer, and its longest is
        # given when the templates are loaded (services.notifier.lookup_link).
        "lookup": 40,
        # The rating page's address (MOTCUA_PUBLIC_URL/danh-gia/<code>/<mac>): its longest
        # is given when the templates are loaded (services.notifier.rating_link); this
        # bounds it only while no public URL is set, when it is never sent.
        "rating": 100,
        "procedure": 60,  # procedure name (tên thủ tục)
        "code": DOSSIER_CODE_MAX_LENGTH,  # dossier code (mã hồ sơ)
        "appointment": 16,  # "HH:MM dd/mm/yyyy", see appointment_text
        "items": 120,  # missing items (thành phần cần bổ sung)
        "reason": 120,  # why rejected (lý do)
        "place": 60,  # where to collect the result (nơi nhận kết quả)
        "tracking": TRACKING_CODE_MAX_LENGTH,  # postal tracking code (mã bưu gửi)
        "agency": 60,  # handling agency (cơ quan giải quyết)
        "late": 20,  # how late, see lateness_text
        "due_soon": 6,  # number of dossiers due soon (sắp đến hạn)
        "overdue": 6,  # number of dossiers overdue (quá hạn)
        "oldest": 100,  # whole codes of the oldest overdue dossiers: two at their longest
        "postal_status": 24,  # what happened to the postal item, see POSTAL_STATUS_TEXTS
    }
)

# Codes a reader types back, and the link she taps: rendered whole or not at all
# (TemplateError), never cut.
CODE_PLACEHOLDERS = frozenset({"code", "tracking", "rating"})

# Any template may use these: the notifier supplies them for every notice.
COMMON_PLACEHOLDERS = frozenset({"office", "lookup", "procedure"})


@dataclass(frozen=True)
class NoticeSpec:
    """What a template kind must say (``required``) and may say (``optional``)."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional | COMMON_PLACEHOLDERS


def _spec(*required: str, optional: Iterable[str] = ()) -> NoticeSpec:
    return NoticeSpec(required=frozenset(required), optional=frozenset(optional))


NOTICE_SPECS: Mapping[NoticeKey, NoticeSpec] = MappingProxyType(
    {
        NoticeKey.RECEIVED: _spec("code", "appointment"),
        NoticeKey.SUPPLEMENT_REQUESTED: _spec("code", "items"),
        NoticeKey.SUPPLEMENT_RECEIVED: _spec("code", "appointment"),
        NoticeKey.REJECTED: _spec("code", "reason"),
        NoticeKey.RESULT_READY_COUNTER: _spec("code", "place"),
        NoticeKey.RESULT_READY_POSTAL: _spec("code", "tracking"),
        NoticeKey.EXTENDED: _spec("code", "appointment"),
        NoticeKey.RETURNED: _spec("code"),
        NoticeKey.RETURNED_RATING: _spec("code", "rating"),
        NoticeKey.OVERDUE_ALERT: _spec("code", "agency", "late"),
        NoticeKey.STEP_OVERDUE: _spec("code", "agency", "appointment"),
        NoticeKey.DAILY_DIGEST: _spec("agency", "due_soon", "overdue", optional=["oldest"]),
        NoticeKey.POSTAL_PROBLEM: _spec("code", "tracking", "postal_status"),
    }
)

# Written with diacritics; the GSM-7 path strips them. Each fits 2 GSM-7 segments in the
# worst case (and 4 UCS-2 segments with diacritics kept).
DEFAULT_TEXTS: Mapping[str, str] = MappingProxyType(
    {
        NoticeKey.RECEIVED: (
            "{office}: Hồ sơ {code} của ông/bà đã được tiếp nhận. "
            "Hẹn trả kết quả: {appointment}. Tra cứu tại {lookup}"
        ),
        NoticeKey.SUPPLEMENT_REQUESTED: (
            "{office}: Hồ sơ {code} cần bổ sung: {items}. "
            "Đề nghị ông/bà bổ sung để hồ sơ được tiếp tục giải quyết."
        ),
        NoticeKey.SUPPLEMENT_RECEIVED: (
            "{office}: Hồ sơ {code} đã được bổ sung đầy đủ. Hẹn trả kết quả mới: {appointment}."
        ),
        NoticeKey.REJECTED: (
            "{office}: Hồ sơ {code} không đủ điều kiện giải quyết. Lý do: {reason}. "
            "Liên hệ Bộ phận Một cửa để được hướng dẫn."
        ),
        NoticeKey.RESULT_READY_COUNTER: (
            "{office}: Hồ sơ {code} đã có kết quả. Mời ông/bà đến nhận tại {place}, "
            "mang theo giấy hẹn trả kết quả."
        ),
        NoticeKey.RESULT_READY_POSTAL: (
            "{office}: Kết quả hồ sơ {code} đã được gửi qua bưu điện, mã bưu gửi {tracking}. "
            "Ông/bà vui lòng giữ liên lạc để nhận."
        ),
        NoticeKey.EXTENDED: (
            "{office} xin lỗi ông/bà: hồ sơ {code} chưa giải quyết kịp hạn. "
            "Hẹn trả kết quả mới: {appointment}. Mong ông/bà thông cảm."
        ),
        NoticeKey.RETURNED: (
            "{office}: Hồ sơ {code} đã được trả kết quả. Cảm ơn ông/bà đã sử dụng dịch vụ."
        ),
        # "returned" where the rating page can be linked to (MOTCUA_PUBLIC_URL set).
        NoticeKey.RETURNED_RATING: (
            "{office}: Hồ sơ {code} đã được trả kết quả. Cảm ơn ông/bà! "
            "Mời đánh giá mức độ hài lòng tại {rating}"
        ),
        NoticeKey.OVERDUE_ALERT: (
            "{office}: Hồ sơ {code} ({procedure}) tại {agency} đã quá hạn {late} làm việc. "
            "Đề nghị chỉ đạo xử lý."
        ),
        NoticeKey.STEP_OVERDUE: (
            "{office}: Hồ sơ {code} ({procedure}) chuyển đến {agency} đã quá hạn xử lý từ "
            "{appointment}. Đề nghị chỉ đạo xử lý."
        ),
        NoticeKey.DAILY_DIGEST: (
            "{office}: {agency} có {due_soon} hồ sơ sắp đến hạn, {overdue} hồ sơ quá hạn. "
            "Quá hạn lâu nhất: {oldest}."
        ),
        NoticeKey.POSTAL_PROBLEM: (
            "{office}: Kết quả hồ sơ {code} gửi qua bưu chính, mã bưu gửi {tracking}, "
            "{postal_status}. Đề nghị liên hệ công dân và chỉ đạo xử lý."
        ),
    }
)


# What a supervisor is told of a postal item that did not reach the citizen.
POSTAL_STATUS_TEXTS: Mapping[str, str] = MappingProxyType(
    {
        "failed": "phát không thành công",
        "returned": "bị chuyển hoàn",
        "not_placed": "không tạo được đơn",
    }
)


# -- wording of values ---------------------------------------------------------------------


def appointment_text(at: datetime) -> str:
    """Hẹn trả kết quả as printed: "HH:MM dd/mm/yyyy" in Vietnam time."""
    return minute_text(at)
