"""Issue 14 item 7, the dashboard's part: /bang-dieu-khien in a real headless Chromium at a
cheap phone's size (360×740), served by uvicorn on loopback as `motcua` serves it, with the
notifier it asks on a port of its own.

A supervisor signs in with her token; a dossier made overdue in the test (the injected clock
moved past its deadline, the tracker's scan, its flag on the intake's read model) is listed
with how late; a citizen's rating of a returned dossier is counted with its procedure; the
pages fetch nothing but themselves; axe-core finds no WCAG 2.1 A/AA fault;
she signs out. Screenshots go to test-output/screens/ for a person to look at.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import free_port
from services.core.runtime.host import build_app
from services.core.runtime.settings import Settings
from services.intake.app import IntakeService
from services.intake.link_mac import link_mac
from services.intake.web.urls import rating_url
from services.notifier.app import NotifierService
from tests.fixtures.browser import Phone, axe_check, press, screenshot
from tests.fixtures.intake import (
    LINK_SECRET,
    FakeClock,
    IntakeHarness,
    dossier_body,
    monday_morning,
)
from tests.fixtures.notifier import INTERNAL_TOKEN, asking_notifier_at
from tests.fixtures.serving import serving
from tests.fixtures.tracker import TrackerHarness

PAGE = "/bang-dieu-khien"
PROCEDURES = (
    ("DD-01", "Đăng ký biến động quyền sử dụng đất", 1),
    ("HT-02", "Đăng ký khai sinh", 3),
    ("KD-03", "Đăng ký hộ kinh doanh", 2),
)


@dataclass(frozen=True)
class Site:
    url: str
    supervisor: str  # the token she types
    overdue: str  # the code of the dossier made overdue


@pytest.fixture
async def site(tmp_path: Path, sqlite_template: Path) -> AsyncIterator[Site]:
    """The intake and the notifier on ports of their own; dossiers of three procedures, some
    finished on time, one late, and one left to run past its deadline."""
    for service in ("intake", "tracker", "notifier"):
        shutil.copy(sqlite_template / f"{service}.db", tmp_path / f"{service}.db")
    clock = FakeClock(monday_morning())
    port = free_port()
    intake = IntakeService(
        Settings(
            data_dir=tmp_path,
            office_name="UBND Phường Bến Nghé",
            link_secret=LINK_SECRET,  # type: ignore[arg-type]  # pydantic makes it a SecretStr
            **asking_notifier_at(port),
        ),
        clock=clock,
        engine=create_engine(f"sqlite+aiosqlite:///{tmp_path}/intake.db"),
    )
    notifier = NotifierService(
        Settings(data_dir=tmp_path, internal_token=INTERNAL_TOKEN),
        clock=clock,
        engine=create_engine(f"sqlite+aiosqlite:///{tmp_path}/notifier.db"),
        run_dispatcher=False,
        run_scheduler=False,
    )
    async with (
        serving(build_app([notifier]), port=port),
        serving(build_app([intake])) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        h = IntakeHarness(http, intake, clock, {}, {}, {})
        h.admin = await h.token("admin", None)
        h.clerk = await h.token("clerk", "UBND-Q1")
        h.supervisor = await h.token("supervisor", "UBND-Q1")
        tracker = TrackerHarness(
            h, create_engine(f"sqlite+aiosqlite:///{tmp_path}/tracker.db"), clock
        )
        try:
            overdue = await seed(h)
            # Tuesday 10:00: the first dossier, due 09:00, is an hour late.
            clock.now = clock.now.replace(day=17, hour=10)
            await tracker.flags_to_intake()
            yield Site(url, h.supervisor["Authorization"].removeprefix("Bearer "), overdue)
        finally:
            await tracker.engine.dispose()


async def seed(h: IntakeHarness) -> str:
    for code, name, days in PROCEDURES:
        await h.procedure(code, name=name, time_limit={"value": days, "unit": "working_days"})
    overdue = (await h.dossier(**dossier_body(procedure_code="DD-01")))["code"]
    finished = [await h.dossier(procedure_code=p) for p in ("HT-02", "HT-02", "KD-03")]
    h.clock.advance(hours=2)
    for dossier in finished:
        r = await h.client.post(f"/dossiers/{dossier['code']}/complete", json={}, headers=h.clerk)
        assert r.status_code == 200, r.text
    # The first handed over, and rated by the citizen from her SMS's link.
    returned = finished[0]
    r = await h.client.post(f"/dossiers/{returned['code']}/return", json={}, headers=h.clerk)
    assert r.status_code == 200, r.text
    link = rating_url("", returned["code"], link_mac(LINK_SECRET, returned["id"]))
    answers = {"ease": "4", "attitude": "5", "on_time": "5", "overall": "4"}
    assert (await h.client.post(link, data=answers)).status_code == 200
    # Received two weeks ago (an import), due in two working days, finished only now: late.
    old = monday_morning().replace(day=2).isoformat()
    late = (await h.dossier(procedure_code="KD-03", received_at=old))["code"]
    r = await h.client.post(f"/dossiers/{late}/complete", json={}, headers=h.clerk)
    assert r.status_code == 200, r.text
    return overdue


async def test_the_supervisor_signs_in_and_sees_the_overdue_dossier(
    site: Site, phone: Phone
) -> None:
    page = phone.page
    response = await page.goto(site.url + PAGE)
    assert response.status == 200
    token_field = page.get_by_label("Mã truy cập")
    assert await token_field.get_attribute("type") == "password"
    await screenshot(page, "dashboard-sign-in")
    form = await axe_check(page)
    assert form.violations == [], form.summary()
    assert {"label", "color-contrast", "html-has-lang"} <= form.passed, form.passed

    await token_field.fill(site.supervisor)
    assert await press(page, "Đăng nhập") == 200
    assert page.url == site.url + PAGE
    main = await page.inner_text("main")
    assert "Lãnh đạo UBND-Q1" in main
    overdue = await page.inner_text("section[aria-labelledby=overdue]")
    assert "Hồ sơ quá hạn (1)" in overdue and site.overdue in overdue
    assert "trễ 1 giờ" in overdue and "09:00 17/11/2026" in overdue
    chart = page.locator("svg.chart")
    assert await chart.get_attribute("role") == "img"
    assert await page.locator("svg.chart rect.fill").count() == 2  # two procedures finished
    assert "Đăng ký hộ kinh doanh: 1/2 hồ sơ đúng hạn" in main
    assert "Không có tin nhắn hay bưu gửi nào lỗi trong kỳ." in main  # the notifier answered
    rated = await page.inner_text("section[aria-labelledby=satisfaction]")
    assert "Mức độ hài lòng (1 đánh giá)" in rated and "Hài lòng: 100 %" in rated
    assert "Đăng ký khai sinh" in rated and "Thái độ 5" in rated and "Hài lòng chung 4" in rated
    cookies = {c["name"]: c for c in await page.context.cookies()}
    session = cookies["motcua_dashboard"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == PAGE
    assert await page.evaluate("document.cookie") == ""  # no script reads either cookie
    await screenshot(page, "dashboard")
    await page.locator("#overdue").scroll_into_view_if_needed()
    await screenshot(page, "dashboard-overdue")
    await page.locator("#satisfaction").scroll_into_view_if_needed()
    await screenshot(page, "dashboard-satisfaction")
    result = await axe_check(page)
    assert result.violations == [], result.summary()
    assert "color-contrast" in result.passed, result.passed

    assert await press(page, "Đăng xuất") == 200
    assert await page.get_by_label("Mã truy cập").count() == 1
    assert "motcua_dashboard" not in {c["name"] for c in await page.context.cookies()}
    # Every request was to the site itself: no stylesheet, font, script or icon from elsewhere.
    assert phone.requests and all(url.startswith(site.url + PAGE) for url in phone.requests)
