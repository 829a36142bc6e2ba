"""Issue 14 item 3: the citizens' lookup page (GET and POST /tra-cuu), on SQLite and PostgreSQL.

What it shows of a dossier along its life, that it shows nothing personal, that a wrong code
and a wrong phone get one answer, that it shares the JSON lookup's rate limit, and that bad
input is told with the field's name. The page in a real browser: tests/e2e/test_pages.py.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from services.intake.adapters import repository as repo
from services.intake.domain.postal import Postal
from tests.fixtures.intake import IntakeHarness

PHONE = "0912345678"  # the applicant's, in tests.fixtures.intake.dossier_body
FORM = {"content-type": "application/x-www-form-urlencoded"}
PERSONAL = ("Nguyễn Văn An", "912345678", "001203004567", "Lê Lợi")
ADDRESS = {"street": "12 Lê Lợi", "ward": "Bến Nghé", "district": "Quận 1", "province": "TP HCM"}


async def look_up(intake: IntakeHarness, code: str, phone: str = PHONE) -> httpx.Response:
    return await intake.client.post("/tra-cuu", data={"code": code, "phone": phone})


async def act(intake: IntakeHarness, code: str, action: str, **body: Any) -> None:
    r = await intake.client.post(f"/dossiers/{code}/{action}", json=body, headers=intake.clerk)
    assert r.status_code == 200, r.text


def text_of(page: httpx.Response) -> str:
    """The page's words, without its markup and style: what a person reads."""
    body = re.sub(r"<style>.*?</style>", " ", page.text, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def field_value(page: httpx.Response, name: str) -> str | None:
    tag = re.search(rf'<input id="{name}"[^>]*>', page.text)
    assert tag, f"no {name} field"
    value = re.search(r'value="([^"]*)"', tag.group())
    return value.group(1) if value else None


async def test_the_qr_address_opens_the_form_with_the_code_filled_in(
    intake: IntakeHarness,
) -> None:
    page = await intake.client.get("/tra-cuu?code=UBND-Q1-20261116-0001")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert field_value(page, "code") == "UBND-Q1-20261116-0001"
    assert field_value(page, "phone") is None
    assert '<html lang="vi">' in page.text and "Tra cứu hồ sơ" in page.text
    # Whole and alone: under 50 KB, nothing to fetch from anywhere (the CSP forbids it too).
    assert len(page.content) < 50_000
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)
    assert "@import" not in page.text and "url(" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    # The phone goes in the POST body, never in an address.
    assert re.search(r'<form [^>]*method="post" action="/tra-cuu"', page.text)
    blank = await intake.client.get("/tra-cuu")
    assert blank.status_code == 200 and field_value(blank, "code") == ""


async def test_a_received_dossier_shows_status_appointment_and_nothing_personal(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    d = await intake.dossier(return_method="postal", return_address=ADDRESS)
    page = await look_up(intake, d["code"], "+84912345678")  # any form of the same number
    assert page.status_code == 200, page.text
    words = text_of(page)
    assert f"Hồ sơ {d['code']}" in words
    assert "Cấp giấy chứng nhận quyền sử dụng đất" in words
    assert "Đã tiếp nhận" in words
    # Monday 09:00 plus five working days (tests.fixtures.intake.monday_morning)
    assert "Hẹn trả kết quả 09:00 23/11/2026" in words
    assert "Ngày tiếp nhận 09:00 16/11/2026" in words
    assert "16/11/2026 Tiếp nhận hồ sơ Hẹn trả kết quả: 09:00 23/11/2026" in words
    for personal in PERSONAL:
        assert personal not in page.text, personal
    assert page.headers["cache-control"] == "no-store"


async def test_the_steps_what_is_missing_and_the_parcel_along_the_dossiers_life(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    d = await intake.dossier(return_method="postal", return_address=ADDRESS)
    code = d["code"]
    intake.clock.advance(hours=2)
    await act(intake, code, "start")
    intake.clock.advance(hours=1)
    items = ["Bản sao CCCD có chứng thực", "Sơ đồ thửa đất"]
    await act(intake, code, "request-supplement", items=items, reason="ghi chú nội bộ 42")
    words = text_of(await look_up(intake, code))
    assert "Cần bổ sung hồ sơ" in words
    assert "Giấy tờ cần bổ sung Bản sao CCCD có chứng thực Sơ đồ thửa đất" in words
    assert "Hẹn trả kết quả" not in words.split("Quá trình giải quyết")[0]  # clock stopped
    assert "ghi chú nội bộ 42" not in words  # the clerk's note stays with the office

    intake.clock.advance(days=1)
    await act(intake, code, "receive-supplement")
    await act(intake, code, "complete")
    async with intake.service.engine.begin() as conn:
        await repo.save_postals(
            conn, {d["id"]: Postal("EL123456789VN", "in_transit", intake.clock())}
        )
    words = text_of(await look_up(intake, code))
    assert "Đã có kết quả" in words and "qua bưu điện" in words
    assert "Giấy tờ cần bổ sung" not in words
    assert "Mã bưu gửi EL123456789VN" in words
    assert "Đang vận chuyển (12:00 17/11/2026)" in words
    steps = words.split("Quá trình giải quyết")[1]
    # Newest first, each with its date and time.
    titles = [
        "12:00 17/11/2026 Có kết quả giải quyết",
        "12:00 17/11/2026 Nhận đủ hồ sơ bổ sung Hẹn trả kết quả:",
        "12:00 16/11/2026 Yêu cầu bổ sung hồ sơ Cần bổ sung: Bản sao CCCD có chứng thực "
        "Cần bổ sung: Sơ đồ thửa đất",
        "11:00 16/11/2026 Chuyển bộ phận giải quyết",
        "09:00 16/11/2026 Tiếp nhận hồ sơ",
    ]
    positions = [steps.find(title) for title in titles]
    assert -1 not in positions, (positions, steps)
    assert positions == sorted(positions), steps


async def test_a_refusal_shows_its_reason(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    await act(intake, d["code"], "reject", reason="Không thuộc thẩm quyền của UBND phường")
    words = text_of(await look_up(intake, d["code"]))
    assert "Không đủ điều kiện giải quyết" in words
    assert "Lý do: Không thuộc thẩm quyền của UBND phường" in words
    summary = words.split("Quá trình giải quyết")[0]
    assert "Hẹn trả kết quả" not in summary  # closed: no appointment stands


async def test_a_wrong_phone_and_a_wrong_code_get_the_same_page(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    unknown = "UBND-Q1-20261116-9999"
    wrong_phone = await look_up(intake, d["code"], "0987654321")
    wrong_code = await look_up(intake, unknown)
    assert wrong_phone.status_code == wrong_code.status_code == 404
    # The one difference is the code the citizen typed, given back for her to correct.
    assert wrong_phone.text.replace(d["code"], "CODE") == wrong_code.text.replace(unknown, "CODE")
    assert "Không tìm thấy hồ sơ" in text_of(wrong_phone)
    assert field_value(wrong_phone, "code") == d["code"]
    assert field_value(wrong_phone, "phone") is None  # never written back into a page
    assert "987654321" not in wrong_phone.text


async def test_an_erased_dossier_is_not_found(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await intake.dossier()
    await act(intake, d["code"], "reject", reason="Không thuộc thẩm quyền")
    intake.clock.advance(days=400)
    assert (await intake.service.housekeeping.run_once())["personal_data_erased"] == 1
    page = await look_up(intake, d["code"])
    assert page.status_code == 404 and "Không tìm thấy hồ sơ" in text_of(page)


async def test_bad_input_is_a_4xx_page_naming_the_field(intake: IntakeHarness) -> None:
    c = intake.client
    cases = [
        ({"code": "X-1"}, 422, "Số điện thoại: chưa nhập."),
        ({"code": "  ", "phone": PHONE}, 422, "Mã hồ sơ: chưa nhập."),
        ({"code": "X" * 65, "phone": PHONE}, 422, "Mã hồ sơ: dài quá 64 ký tự."),
        ({"code": "X-1", "phone": "0" * 33}, 422, "Số điện thoại: dài quá 32 ký tự."),
        ({"code": "X-1", "phone": "xin chào"}, 422, "Số điện thoại: không phải số điện thoại"),
        ({"code": "X\x00-1", "phone": PHONE}, 422, "Mã hồ sơ: có ký tự không hợp lệ."),
    ]
    for form, status, message in cases:
        page = await c.post("/tra-cuu", data=form)
        assert page.status_code == status, (form, page.text)
        assert page.headers["content-type"].startswith("text/html")
        assert message in text_of(page), (form, text_of(page))
    bad_bytes = await c.post("/tra-cuu", content=b"code=X-1&phone=%FF%FE", headers=FORM)
    assert bad_bytes.status_code == 422
    assert "Số điện thoại: có ký tự không hợp lệ." in text_of(bad_bytes)
    as_json = await c.post("/tra-cuu", json={"code": "X-1", "phone": PHONE})
    assert as_json.status_code == 415
    assert "application/x-www-form-urlencoded" in text_of(as_json)
    too_long = await c.get("/tra-cuu", params={"code": "X" * 65})
    assert too_long.status_code == 422 and "Mã hồ sơ: dài quá 64 ký tự." in text_of(too_long)


async def test_the_page_and_the_json_lookup_share_one_rate_limit(intake: IntakeHarness) -> None:
    intake.client._transport.app.state.public_limiter.limit = 2  # type: ignore[attr-defined]
    assert (await intake.client.get(f"/public/dossiers/X-1?phone={PHONE}")).status_code == 404
    assert (await look_up(intake, "X-1")).status_code == 404
    limited = await look_up(intake, "X-1")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "tra cứu quá nhiều lần" in text_of(limited)
    assert field_value(limited, "code") == "X-1"
    again = await intake.client.get(f"/public/dossiers/X-1?phone={PHONE}")
    assert again.status_code == 429
    # Malformed input is refused before it is counted, as the JSON route's is: told what is
    # wrong even while the client is held back.
    assert (await intake.client.post("/tra-cuu", data={"code": "X-1"})).status_code == 422


async def test_the_index_points_to_the_page(intake: IntakeHarness) -> None:
    index = (await intake.client.get("/")).json()
    assert index["links"]["lookup_page"] == "/tra-cuu"
