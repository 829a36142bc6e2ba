"""The receipt slip (giấy tiếp nhận hồ sơ và hẹn trả kết quả), GET /dossiers/{code}/receipt.pdf,
from the real intake on SQLite and PostgreSQL, read as a person and a phone read it: its
text extracted by poppler's pdftotext (the Vietnamese as typed, so the fonts are embedded
and map back to Unicode), its page rendered by pdftoppm and the QR code on it decoded by
zbarimg. `.ci/run` installs poppler-utils and zbar-tools."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from services.intake.web.urls import lookup_url
from tests.fixtures.db import unavailable
from tests.fixtures.intake import IntakeHarness

TOOLS = ("pdftotext", "pdftoppm", "pdfinfo", "pdffonts", "zbarimg")
DOCUMENTS = [
    {"name": "Đơn đăng ký biến động đất đai, tài sản gắn liền với đất (bản chính)", "copies": 1},
    {"name": "Giấy chứng nhận quyền sử dụng đất", "copies": 2},
]
ADDRESS = {
    "street": "12 Lê Lợi",
    "ward": "Phường Bến Nghé",
    "district": "Quận 1",
    "province": "TP Hồ Chí Minh",
}


@pytest.fixture(autouse=True)
def _poppler_and_zbar() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed (Debian poppler-utils, zbar-tools)")


def run(*command: str | Path) -> str:
    done = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def text_of(pdf: Path) -> str:
    """The slip's text, its lines joined: a value wraps where the page is narrow."""
    return re.sub(r"\s+", " ", run("pdftotext", pdf, "-"))


def qr_codes(pdf: Path, tmp_path: Path) -> list[str]:
    """What a phone reads off the printed page: every page at 150 dpi, every QR code on it."""
    tmp_path.mkdir(exist_ok=True)
    run("pdftoppm", "-png", "-r", "150", pdf, tmp_path / "page")
    pages = sorted(tmp_path.glob("page*.png"))
    assert pages
    # zbarimg exits 4 when a page holds no code: read the codes, not the status.
    found = subprocess.run(
        ["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", *map(str, pages)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return found.stdout.splitlines()


async def slip(intake: IntakeHarness, code: str, tmp_path: Path, name: str = "slip") -> Path:
    r = await intake.client.get(f"/dossiers/{code}/receipt.pdf", headers=intake.clerk)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    # The applicant's name and phone: no cache between the clerk and us keeps a copy.
    assert r.headers["cache-control"] == "no-store"
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(r.content)
    return path


async def act(intake: IntakeHarness, code: str, action: str, body: dict[str, Any]) -> None:
    r = await intake.client.post(f"/dossiers/{code}/{action}", json=body, headers=intake.clerk)
    assert r.status_code == 200, r.text


async def test_the_slip_says_who_handed_in_what_and_when_the_result_is_due(
    intake: IntakeHarness, tmp_path: Path
) -> None:
    await intake.agency("UBND-Q1", "Ủy ban nhân dân Quận 1")
    await intake.procedure(time_limit={"value": 5, "unit": "working_days"})
    intake.clock.advance(minutes=7)  # Mon 16 Nov 2026 09:07
    d = await intake.dossier(documents=DOCUMENTS, return_method="postal", return_address=ADDRESS)
    assert d["documents"] == DOCUMENTS
    shown = await intake.client.get(f"/dossiers/{d['code']}", headers=intake.clerk)
    assert shown.json()["documents"] == DOCUMENTS

    pdf = await slip(intake, d["code"], tmp_path)
    info = run("pdfinfo", pdf)
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info), info
    assert re.search(r"Pages:\s+1\n", info), info
    fonts = run("pdffonts", pdf).splitlines()[2:]
    assert fonts and all(" yes " in line.split("Identity-H")[-1] for line in fonts), fonts
    text = text_of(pdf)
    for expected in (
        "ỦY BAN NHÂN DÂN QUẬN 1",
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "GIẤY TIẾP NHẬN HỒ SƠ VÀ HẸN TRẢ KẾT QUẢ",
        "(Lần 1)",
        f"Mã hồ sơ: {d['code']}",
        "Tiếp nhận hồ sơ của: Nguyễn Văn An",
        "Số điện thoại: 0912 345 678",
        "Nội dung yêu cầu giải quyết: Cấp giấy chứng nhận quyền sử dụng đất",
        f"1 {DOCUMENTS[0]['name']} 01",
        f"2 {DOCUMENTS[1]['name']} 02",
        "Thời gian giải quyết hồ sơ theo quy định: 5 ngày làm việc",
        "Thời gian nhận hồ sơ: 09 giờ 07 phút, ngày 16 tháng 11 năm 2026",
        # Five working days later, to the minute.
        "Thời gian trả kết quả giải quyết hồ sơ: 09 giờ 07 phút, ngày 23 tháng 11 năm 2026",
        "Qua dịch vụ bưu chính công ích, đến địa chỉ: 12 Lê Lợi, Phường Bến Nghé, Quận 1, "
        "TP Hồ Chí Minh",
        "NGƯỜI NỘP HỒ SƠ",
        "NGƯỜI TIẾP NHẬN HỒ SƠ",
    ):
        assert expected in text, (expected, text)
    # The ID number is on no line of the paper form.
    assert "001203004567" not in text


async def test_the_qr_code_opens_the_lookup_page_of_the_dossier(
    intake: IntakeHarness, tmp_path: Path
) -> None:
    await intake.procedure()
    d = await intake.dossier()
    # MOTCUA_PUBLIC_URL unset: the address the clerk's request came in on.
    first = await slip(intake, d["code"], tmp_path, "unset")
    assert qr_codes(first, tmp_path / "unset") == [lookup_url("http://intake.test", d["code"])]

    intake.service.context.settings.public_url = "https://motcua.quan1.example.vn/"
    second = await slip(intake, d["code"], tmp_path, "set")
    expected = "https://motcua.quan1.example.vn/tra-cuu?code=" + d["code"]
    assert qr_codes(second, tmp_path / "set") == [expected]
    assert expected in text_of(second)  # and printed under it, for one who types it


async def test_a_supplement_and_an_extension_each_give_a_new_slip(
    intake: IntakeHarness, tmp_path: Path
) -> None:
    await intake.procedure(time_limit={"value": 2, "unit": "working_days"})
    d = await intake.dossier()  # Mon 16 Nov 09:00 → due Wed 18 Nov 09:00
    code = d["code"]
    first = text_of(await slip(intake, code, tmp_path, "first"))
    assert "(Lần 1)" in first
    assert "trả kết quả giải quyết hồ sơ: 09 giờ 00 phút, ngày 18 tháng 11 năm 2026" in first

    intake.clock.advance(days=1)  # Tue 09:00
    await act(intake, code, "request-supplement", {"items": ["Bản sao CCCD"], "reason": "Thiếu"})
    stopped = text_of(await slip(intake, code, tmp_path, "stopped"))
    assert "(Lần 1)" in stopped
    assert "trả kết quả giải quyết hồ sơ: chưa xác định" in stopped

    intake.clock.advance(days=2, minutes=30)  # Thu 19 Nov 09:30: the full two days again
    await act(intake, code, "receive-supplement", {})
    second = text_of(await slip(intake, code, tmp_path, "second"))
    assert "(Lần 2)" in second
    assert "Ngày 19 tháng 11 năm 2026" in second
    assert "hồ sơ đã được bổ sung đầy đủ" in second
    assert "trả kết quả giải quyết hồ sơ: 09 giờ 30 phút, ngày 23 tháng 11 năm 2026" in second
    # The receipt itself does not move.
    assert "Thời gian nhận hồ sơ: 09 giờ 00 phút, ngày 16 tháng 11 năm 2026" in second

    intake.clock.advance(hours=2)
    await act(
        intake,
        code,
        "extend",
        {"new_due_at": "2026-11-25T16:30:00+07:00", "reason": "Cần xác minh thực địa"},
    )
    third = text_of(await slip(intake, code, tmp_path, "third"))
    assert "(Lần 3)" in third
    assert "hẹn lại ngày trả kết quả" in third
    assert "trả kết quả giải quyết hồ sơ: 16 giờ 30 phút, ngày 25 tháng 11 năm 2026" in third


async def test_the_slip_is_for_those_who_may_see_the_dossier(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    url = f"/dossiers/{d['code']}/receipt.pdf"
    other = await intake.token("clerk", "UBND-Q3")
    refused = await intake.client.get(url, headers=other)
    unknown = await intake.client.get("/dossiers/UBND-Q1-20261116-9999/receipt.pdf", headers=other)
    as_get = await intake.client.get(f"/dossiers/{d['code']}", headers=other)
    # Another agency's clerk learns no more than from a code that does not exist.
    assert refused.status_code == unknown.status_code == as_get.status_code == 404
    assert refused.json() == unknown.json() == as_get.json()
    assert (await intake.client.get(url)).status_code == 401
    # A supervisor reads dossiers but prints no slip: the clerk hands it over at the counter.
    assert (await intake.client.get(url, headers=intake.supervisor)).status_code == 403
    admin = await intake.client.get(url, headers=intake.admin)
    assert admin.status_code == 200
    assert admin.content.startswith(b"%PDF-")
