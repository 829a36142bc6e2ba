"""Giấy tiếp nhận hồ sơ và hẹn trả kết quả: the receipt slip a clerk prints and hands to the
applicant, laid out as the one-stop form offices print (issue 14 cites Circular
03/2025/TT-VPCP): the agency, the dossier code, who handed it in, the request, the papers
received, the time limit, when it was received and when the result is due, to the minute in
Vietnam time, where the result is returned, and the signatures of both sides. A QR code opens
the citizen lookup page for this dossier.

`receipt_slip` is a pure function of its arguments: it reads no clock and no database (the
slip is dated by the action that set its appointment, so the same state prints the same
bytes). The route (api/dossiers.py) loads the dossier and decides who may print it.

A4, fonts embedded (DejaVu Serif, shipped in fonts/ with its licence, subset by fpdf2), so
the diacritics print on any printer and extract as text; the QR code is drawn as vectors, so
it prints sharp at any resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources

import segno
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import FontFace

from services.core.domain.calendar import VN_TZ
from services.core.domain.deadlines import TimeUnit, TransitionKind
from services.intake.domain.model import CLOCK_TRANSITIONS, Dossier

FONT = "DejaVuSerif"
_FONT_FILES = {"": "DejaVuSerif.ttf", "B": "DejaVuSerif-Bold.ttf"}
# The clock transitions that give the dossier a new appointment, and so a new slip: the full
# time counted again once the papers are complete, the rest of it after a pause, a date
# put back (phiếu hẹn lại). Why each reissue happened, as the slip says it.
_REISSUED_BY: dict[TransitionKind, str] = {
    TransitionKind.RESTART: "hồ sơ đã được bổ sung đầy đủ, thời hạn tính lại từ đầu",
    TransitionKind.RESUME: "hồ sơ tiếp tục được giải quyết sau thời gian tạm dừng",
    TransitionKind.EXTEND: "hẹn lại ngày trả kết quả",
}
_UNITS = {
    TimeUnit.WORKING_DAYS: "ngày làm việc",
    TimeUnit.WORKING_HOURS: "giờ làm việc",
    TimeUnit.CALENDAR_DAYS: "ngày",
}
PAGE_WIDTH = 210  # A4, mm
MARGIN = 20
TEXT_WIDTH = PAGE_WIDTH - 2 * MARGIN
LINE = 6.5  # mm: 12 pt text with room for the stacked Vietnamese diacritics
QR_SIZE = 34  # mm: about 0.8 mm a module for a lookup address, read by any phone camera


@dataclass(frozen=True)
class SlipIssue:
    """Which slip of the dossier this is (lần 1 at the receipt, one more each time the
    appointment was set again), when it was issued, and why (None for the first)."""

    number: int
    issued_at: datetime
    reason: str | None


def slip_issue(dossier: Dossier) -> SlipIssue:
    """The dossier's latest slip, counted from its history: each entry whose clock transition
    set a new appointment issued one (a calendar correction that moves the date does not: it
    is no action on the dossier, and the next action's slip shows its effect)."""
    issue = SlipIssue(1, dossier.received_at, None)
    for entry in dossier.history:
        kind = CLOCK_TRANSITIONS.get(entry.action)
        reason = _REISSUED_BY.get(kind) if kind else None
        if reason is not None:
            issue = SlipIssue(issue.number + 1, entry.at, reason)
    return issue


def when(moment: datetime) -> str:
    """09 giờ 05 phút, ngày 23 tháng 11 năm 2026: the form's wording, in Vietnam time."""
    t = moment.astimezone(VN_TZ)
    return f"{t:%H} giờ {t:%M} phút, ngày {t:%d} tháng {t:%m} năm {t.year}"


def receipt_slip(
    dossier: Dossier, agency_name: str, lookup_url: str, appointment: datetime | None
) -> bytes:
    """The slip as a PDF. ``appointment`` is the due date in force (the read model's, as GET
    /dossiers/{code} shows it); None while the clock is stopped (a supplement asked for, a
    pause), which the slip says instead of a date."""
    issue = slip_issue(dossier)
    pdf = _document(issue.issued_at)
    _header(pdf, agency_name, dossier.code, issue)
    applicant = dossier.applicant
    _field(pdf, "Tiếp nhận hồ sơ của: ", applicant.full_name if applicant else _ERASED)
    # In full, as on the paper form: the applicant checks on it the number her texts go to.
    _field(pdf, "Số điện thoại: ", _national(applicant.phone) if applicant else _ERASED)
    _field(pdf, "Nội dung yêu cầu giải quyết: ", dossier.procedure.name)
    _field(pdf, "Mã thủ tục: ", dossier.procedure.code)
    _documents(pdf, dossier)
    limit = dossier.procedure.time_limit
    _field(
        pdf,
        "2. Thời gian giải quyết hồ sơ theo quy định: ",
        f"{limit.value} {_UNITS[limit.unit]}",
    )
    _field(pdf, "3. Thời gian nhận hồ sơ: ", when(dossier.received_at))
    due = when(appointment) if appointment else _CLOCK_STOPPED
    _field(pdf, "4. Thời gian trả kết quả giải quyết hồ sơ: ", due, bold=True)
    _field(pdf, "5. Đăng ký nhận kết quả tại: ", _return_place(dossier, agency_name))
    _lookup(pdf, lookup_url, dossier.code)
    _signatures(pdf)
    return bytes(pdf.output())


_ERASED = "(đã xoá theo quy định về bảo vệ dữ liệu cá nhân)"
_CLOCK_STOPPED = (
    "chưa xác định: thời hạn đang tạm dừng (chờ bổ sung hồ sơ hoặc tạm dừng giải quyết); "
    "giấy hẹn mới được cấp khi hồ sơ tiếp tục được giải quyết"
)


@cache
def _font_paths() -> dict[str, str]:
    fonts = resources.files("services.intake") / "fonts"
    return {style: str(fonts / name) for style, name in _FONT_FILES.items()}


def _document(issued_at: datetime) -> FPDF:
    pdf = FPDF(orientation="portrait", unit="mm", format="A4")
    # The document's dates are the slip's own, never the time it was printed: the same
    # state gives the same file.
    pdf.set_creation_date(issued_at)
    pdf.set_title("Giấy tiếp nhận hồ sơ và hẹn trả kết quả")
    pdf.set_creator("motcua")
    pdf.set_margins(MARGIN, 15, MARGIN)
    pdf.set_auto_page_break(auto=True, margin=15)
    for style, path in _font_paths().items():
        pdf.add_font(FONT, style, path)
    pdf.add_page()
    pdf.set_font(FONT, "", 12)
    return pdf


def _header(pdf: FPDF, agency_name: str, code: str, issue: SlipIssue) -> None:
    left, right = 76, TEXT_WIDTH - 76
    top = pdf.get_y()
    _centred(pdf, MARGIN, left, agency_name.upper(), bold=True, size=10)
    _centred(pdf, MARGIN, left, "Bộ phận tiếp nhận và trả kết quả", size=10)
    _centred(pdf, MARGIN, left, f"Mã hồ sơ: {code}", bold=True, size=10)
    below_left = pdf.get_y()
    pdf.set_y(top)
    _centred(pdf, MARGIN + left, right, "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", bold=True, size=10)
    _centred(pdf, MARGIN + left, right, "Độc lập - Tự do - Hạnh phúc", bold=True, size=10)
    # The motto's underline, as the national form draws it: a rule under its middle.
    middle, y = MARGIN + left + right / 2, pdf.get_y() + 0.5
    pdf.line(middle - 28, y, middle + 28, y)
    pdf.ln(3)
    day = issue.issued_at.astimezone(VN_TZ)
    _centred(pdf, MARGIN + left, right, f"Ngày {day:%d} tháng {day:%m} năm {day.year}", size=10)
    pdf.set_y(max(below_left, pdf.get_y()) + 8)
    _centred(pdf, MARGIN, TEXT_WIDTH, "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ", bold=True, size=14)
    _centred(pdf, MARGIN, TEXT_WIDTH, f"(Lần {issue.number})")
    if issue.reason:
        note = f"Giấy này thay giấy hẹn đã cấp trước đó: {issue.reason}."
        _centred(pdf, MARGIN, TEXT_WIDTH, note, size=11)
    pdf.ln(4)
    pdf.set_font(FONT, "", 12)


def _centred(
    pdf: FPDF, x: float, width: float, text: str, *, bold: bool = False, size: int = 12
) -> None:
    """A centred paragraph in the column from ``x``, the next line below it."""
    pdf.set_font(FONT, "B" if bold else "", size)
    pdf.set_x(x)
    pdf.multi_cell(width, size * 0.5, text, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _field(pdf: FPDF, label: str, value: str, *, bold: bool = False) -> None:
    pdf.set_x(MARGIN)
    # Markdown (for bold) only for the slip's own wording, never for what a clerk typed: a
    # name holding "--" or "__" would be underlined or slanted.
    style = "**" if bold else ""
    pdf.multi_cell(
        TEXT_WIDTH,
        LINE,
        f"{label}{style}{value}{style}",
        markdown=bold,
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )


def _documents(pdf: FPDF, dossier: Dossier) -> None:
    _field(pdf, "1. Thành phần hồ sơ nộp gồm:", "")
    if not dossier.documents:
        _field(pdf, "    (không ghi)", "")
        return
    pdf.set_font(FONT, "", 11)
    with pdf.table(
        col_widths=(12, TEXT_WIDTH - 34, 22),
        text_align=("CENTER", "LEFT", "CENTER"),
        line_height=LINE - 0.5,
        headings_style=FontFace(emphasis="BOLD"),
        width=TEXT_WIDTH,
    ) as table:
        table.row(("STT", "Tên giấy tờ", "Số bản"))
        for number, document in enumerate(dossier.documents, start=1):
            table.row((str(number), document.name, f"{document.copies:02d}"))
    pdf.set_font(FONT, "", 12)
    pdf.ln(2)


def _return_place(dossier: Dossier, agency_name: str) -> str:
    if dossier.return_method != "postal":
        return f"Bộ phận tiếp nhận và trả kết quả, {agency_name} (nhận trực tiếp)"
    address = dossier.return_address
    where = (
        f"{address.street}, {address.ward}, {address.district}, {address.province}"
        if address
        else _ERASED
    )
    return f"Qua dịch vụ bưu chính công ích, đến địa chỉ: {where}"


def _lookup(pdf: FPDF, url: str, code: str) -> None:
    pdf.ln(4)
    if pdf.will_page_break(QR_SIZE + 2):
        pdf.add_page()
    top = pdf.get_y()
    _qr(pdf, url, MARGIN, top, QR_SIZE)
    pdf.set_xy(MARGIN + QR_SIZE + 5, top + 4)
    pdf.set_font(FONT, "", 11)
    text = (
        "Tra cứu tình trạng hồ sơ: quét mã QR bằng điện thoại, hoặc mở trang tra cứu, "
        f"nhập mã hồ sơ {code} và số điện thoại đã đăng ký:"
    )
    width = TEXT_WIDTH - QR_SIZE - 5
    pdf.multi_cell(width, 5.5, text, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
    # The address alone on its lines, in a smaller size, so that it breaks only where it must.
    pdf.set_font(FONT, "", 9)
    pdf.multi_cell(width, 4.5, url, align="L", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_xy(MARGIN, max(pdf.get_y(), top + QR_SIZE) + 6)
    pdf.set_font(FONT, "", 12)


def _qr(pdf: FPDF, url: str, x: float, y: float, size: float) -> None:
    """The QR code as filled rectangles, a run of dark modules at a time, quiet zone kept."""
    qr = segno.make(url, error="m", micro=False)
    rows = [list(row) for row in qr.matrix_iter(border=4)]
    module = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        c = 0
        while c < len(row):
            if not row[c]:
                c += 1
                continue
            start = c
            while c < len(row) and row[c]:
                c += 1
            pdf.rect(x + start * module, y + r * module, (c - start) * module, module, style="F")


def _signatures(pdf: FPDF) -> None:
    if pdf.will_page_break(40):
        pdf.add_page()
    half = TEXT_WIDTH / 2
    top = pdf.get_y()
    for column, title in enumerate(("NGƯỜI NỘP HỒ SƠ", "NGƯỜI TIẾP NHẬN HỒ SƠ")):
        pdf.set_y(top)
        _centred(pdf, MARGIN + column * half, half, title, bold=True)
        _centred(pdf, MARGIN + column * half, half, "(Ký và ghi rõ họ tên)", size=11)


def _national(phone: str) -> str:
    """+84912345678 → 0912 345 678, as a number is written on paper."""
    national = "0" + phone.removeprefix("+84")
    return f"{national[:4]} {national[4:7]} {national[7:]}"
