"""Issue 14 item 7, the lookup page's part: the page in a real headless Chromium, served by
uvicorn on loopback as `motcua` serves it, at a cheap phone's size (360×740).

The citizen arrives from the receipt slip's QR code with the code filled in, types her phone
and reads her dossier's status; a wrong phone gets the page a wrong code gets; the pages fetch
nothing but themselves; axe-core finds no WCAG 2.1 A/AA fault (labels, contrast among them).
Screenshots go to test-output/screens/ for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.settings import Settings
from services.intake.adapters.tokens import create_token
from services.intake.app import IntakeService
from services.intake.web.urls import lookup_url
from tests.fixtures.browser import Phone, axe_check, press, screenshot
from tests.fixtures.intake import FakeClock, dossier_body, monday_morning
from tests.fixtures.serving import serving

PHONE = "0912345678"  # the applicant's, in tests.fixtures.intake.dossier_body
ITEMS = ["Bản sao CCCD có chứng thực", "Sơ đồ thửa đất do Văn phòng đăng ký đất đai lập"]


@dataclass(frozen=True)
class Site:
    url: str
    code: str  # a dossier awaiting a supplement


@pytest.fixture
async def site(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Site]:
    """The intake on a port of its own, with one dossier a clerk asked a supplement for."""
    shutil.copy(sqlite_template / "intake.db", tmp_path / "intake.db")
    clock = FakeClock(monday_morning())
    service = IntakeService(
        Settings(data_dir=tmp_path, office_name="UBND Phường Bến Nghé"),
        clock=clock,
        engine=create_engine(f"sqlite+aiosqlite:///{tmp_path}/intake.db"),
    )
    async with serving(build_app([service])) as url, httpx.AsyncClient(base_url=url) as http:
        async with service.engine.begin() as conn:
            admin = await create_token(conn, "admin", None, None, clock())
            clerk = await create_token(conn, "clerk", "UBND-Q1", None, clock())
        procedure = {
            "code": "DD-01",
            "name": "Đăng ký biến động quyền sử dụng đất",
            "agency_code": "UBND-Q1",
            "time_limit": {"value": 10, "unit": "working_days"},
        }
        as_admin = {"Authorization": f"Bearer {admin}"}
        r = await http.post("/procedures", json=procedure, headers=as_admin)
        assert r.status_code == 201, r.text
        as_clerk = {"Authorization": f"Bearer {clerk}"}
        r = await http.post(
            "/dossiers", json=dossier_body(procedure_code="DD-01"), headers=as_clerk
        )
        assert r.status_code == 201, r.text
        code = r.json()["code"]
        clock.advance(hours=1)
        r = await http.post(f"/dossiers/{code}/start", headers=as_clerk)
        assert r.status_code == 200, r.text
        clock.advance(hours=3)
        supplement = {"items": ITEMS, "reason": "thiếu giấy tờ"}
        r = await http.post(
            f"/dossiers/{code}/request-supplement", json=supplement, headers=as_clerk
        )
        assert r.status_code == 200, r.text
        yield Site(url, code)


async def submit(page: Any) -> int:
    """Press the form's button; the answer's HTTP status."""
    return await press(page, "Tra cứu")


async def test_from_the_qr_code_the_citizen_types_her_phone_and_reads_the_status(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    response = await page.goto(lookup_url(site.url, site.code))
    assert response.status == 200
    code_field = page.get_by_label("Mã hồ sơ")
    phone_field = page.get_by_label("Số điện thoại")
    assert await code_field.input_value() == site.code
    assert await phone_field.input_value() == ""
    assert await phone_field.evaluate("el => el === document.activeElement")  # type at once
    await screenshot(page, "lookup-form-from-qr")

    await phone_field.fill(PHONE)
    assert await submit(page) == 200
    assert page.url == site.url + "/tra-cuu"  # the phone went in the body, not the address
    main = await page.inner_text("main")
    assert "Cần bổ sung hồ sơ" in main
    for item in ITEMS:
        assert item in main
    assert "Tiếp nhận hồ sơ" in main and "09:00 16/11/2026" in main
    assert "Nguyễn Văn An" not in main and "912345678" not in await page.content()
    # The status is readable above the fold of a 740-pixel screen.
    status = await page.locator(".status").bounding_box()
    assert status is not None and status["y"] + status["height"] <= 740
    await screenshot(page, "lookup-result")

    # Two pages, two requests: no stylesheet, font, script or icon fetched, from anywhere.
    assert phone.requests == [lookup_url(site.url, site.code), site.url + "/tra-cuu"]


async def test_a_wrong_phone_gets_the_page_a_wrong_code_gets(site: Site, phone: Phone) -> None:
    page = phone.page
    seen = []
    for code, number in ((site.code, "0987654321"), ("UBND-Q1-20261116-9999", PHONE)):
        await page.goto(lookup_url(site.url, code))
        await page.get_by_label("Số điện thoại").fill(number)
        status = await submit(page)
        main = await page.inner_text("main")
        seen.append((status, main, await page.get_by_label("Số điện thoại").input_value()))
        assert await page.get_by_label("Mã hồ sơ").input_value() == code  # to correct it
    assert seen[0] == seen[1]
    status, main, phone_left = seen[0]
    assert status == 404 and "Không tìm thấy hồ sơ" in main
    assert phone_left == ""  # the number is not left in the page for the next person
    await screenshot(page, "lookup-not-found")


async def test_the_pages_pass_axe_on_labels_and_contrast(site: Site, phone: Phone) -> None:
    page = phone.page
    await page.goto(lookup_url(site.url, site.code))
    form = await axe_check(page)
    assert form.violations == [], form.summary()
    assert {"label", "color-contrast", "html-has-lang"} <= form.passed, form.passed

    await page.get_by_label("Số điện thoại").fill(PHONE)
    assert await submit(page) == 200
    result = await axe_check(page)
    assert result.violations == [], result.summary()
    assert "color-contrast" in result.passed, result.passed
