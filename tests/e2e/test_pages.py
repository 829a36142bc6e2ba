"""Issue 14 item 7, the lookup page's part: the page in a real headless Chromium, served by
uvicorn on loopback as `motcua` serves it, at a cheap phone's size (360×740).

The citizen arrives from the receipt slip's QR code with the code filled in, types her phone
and reads her dossier's status; a wrong phone gets the page a wrong code gets; the pages fetch
nothing but themselves; axe-core finds no WCAG 2.1 A/AA fault (labels, contrast among them).
Screenshots go to test-output/screens/ for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from services.notifier.app import templates_from
from services.notifier.domain.notices import NoticeKey
from services.notifier.rating_link import RatingLink
from tests.fixtures.browser import PHONE_VIEWPORT, Phone, axe_check, press, screenshot
from tests.fixtures.intake import LINK_SECRET, FakeClock, dossier_body, monday_morning
from tests.fixtures.serving import serving

PHONE = "0912345678"  # the applicant's, in tests.fixtures.intake.dossier_body
ITEMS = ["Bản sao CCCD có chứng thực", "Sơ đồ thửa đất do Văn phòng đăng ký đất đai lập"]


@dataclass(frozen=True)
class Site:
    url: str
    code: str  # a dossier awaiting a supplement


@dataclass(frozen=True)
class Office:
    """The intake on a port of its own, with a procedure and a clerk."""

    url: str
    http: httpx.AsyncClient
    clerk: dict[str, str]
    clock: FakeClock

    async def dossier(self) -> dict[str, Any]:
        r = await self.http.post(
            "/dossiers", json=dossier_body(procedure_code="DD-01"), headers=self.clerk
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def act(self, code: str, action: str, body: dict[str, Any] | None = None) -> None:
        r = await self.http.post(f"/dossiers/{code}/{action}", json=body, headers=self.clerk)
        assert r.status_code == 200, r.text


@asynccontextmanager
async def running_office(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Office]:
    shutil.copy(sqlite_template / "intake.db", tmp_path / "intake.db")
    clock = FakeClock(monday_morning())
    settings = Settings(
        data_dir=tmp_path,
        office_name="UBND Phường Bến Nghé",
        link_secret=LINK_SECRET,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
    )
    service = IntakeService(
        settings, clock=clock, engine=create_engine(f"sqlite+aiosqlite:///{tmp_path}/intake.db")
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
        yield Office(url, http, {"Authorization": f"Bearer {clerk}"}, clock)


@pytest.fixture
async def site(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Site]:
    """The intake on a port of its own, with one dossier a clerk asked a supplement for."""
    async with running_office(tmp_path, sqlite_template) as office:
        code = (await office.dossier())["code"]
        office.clock.advance(hours=1)
        await office.act(code, "start")
        office.clock.advance(hours=3)
        await office.act(code, "request-supplement", {"items": ITEMS, "reason": "thiếu giấy tờ"})
        yield Site(office.url, code)


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


# -- issue 14 item 4: the rating page -------------------------------------------------------


def returned_sms(office: Office, dossier: dict[str, Any]) -> str:
    """The text the notifier sends when the dossier is returned, its public URL this server."""
    settings = Settings(public_url=office.url, link_secret=LINK_SECRET)  # type: ignore[arg-type]
    link = RatingLink.of(settings)(dossier["id"], dossier["code"])
    assert link is not None
    values = {"office": "UBND Ben Nghe", "lookup": "", "procedure": "", "code": dossier["code"]}
    sms = templates_from(settings).render(NoticeKey.RETURNED_RATING, {**values, "rating": link})
    return sms.text


async def send(page: Any) -> int:
    return await press(page, "Gửi đánh giá")


async def test_the_rating_page_from_the_sms_is_answered_once_and_refused_the_second_time(
    tmp_path: Path, sqlite_template: Path, phone: Phone
) -> None:
    async with running_office(tmp_path, sqlite_template) as office:
        dossier = await office.dossier()
        await office.act(dossier["code"], "complete")
        await office.act(dossier["code"], "return")
        [link] = re.findall(r"https?://\S+$", returned_sms(office, dossier))
        page = phone.page
        response = await page.goto(link)
        assert response.status == 200
        assert dossier["code"] in await page.inner_text("main")
        # The same link open in a second tab, as a citizen who tapped it twice.
        second = await page.context.new_page()
        await second.goto(link)
        for tab in (second, page):
            await answer_all(tab, ("4", "5", "3", "5"))
        await page.get_by_label("Góp ý thêm").fill("Cán bộ hướng dẫn tận tình.")
        await page.evaluate("window.scrollTo(0, 0)")  # the screen as the citizen first sees it
        await screenshot(page, "rating-form")
        form = await axe_check(page)
        assert form.violations == [], form.summary()
        assert {"label", "color-contrast", "html-has-lang"} <= form.passed, form.passed

        assert await send(page) == 200
        assert "Cảm ơn ông/bà!" in await page.inner_text("main")
        await screenshot(page, "rating-thanks")
        thanks = await axe_check(page)
        assert thanks.violations == [], thanks.summary()

        # Sent again from the other tab: refused, clearly.
        assert await send(second) == 409
        main = await second.inner_text("main")
        assert "Hồ sơ này đã được đánh giá" in main and "một lần" in main
        await second.set_viewport_size(PHONE_VIEWPORT)
        await screenshot(second, "rating-refused")
        refused = await axe_check(second)
        assert refused.violations == [], refused.summary()
        # The first tab's way back finds the form gone (the page is never cached).
        await page.go_back()
        assert "Hồ sơ này đã được đánh giá" in await page.inner_text("main")
        assert await page.locator("form").count() == 0
        # Nothing fetched but the page itself.
        assert set(phone.requests) == {link}


QUESTIONS = (
    "Thủ tục hành chính có dễ hiểu, dễ thực hiện không?",
    "Thái độ của công chức tiếp nhận, giải quyết hồ sơ",
    "Kết quả có được trả đúng hẹn không?",
    "Mức độ hài lòng chung của ông/bà",
)


async def answer_all(page: Any, scores: tuple[str, ...]) -> None:
    """Choose a score for each question, by the question's words and the score's label."""
    for question, score in zip(QUESTIONS, scores, strict=True):
        group = page.get_by_role("group", name=question)
        await group.get_by_role("radio", name=re.compile(f"^{score} – ")).check()
