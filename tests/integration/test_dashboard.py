"""The supervisors' dashboard (GET /bang-dieu-khien, issue 14 item 5) on SQLite and PostgreSQL:
signing in and out (the cookie's attributes, CSRF, who may), the chart's figures against GET
/reports/on-time, the citizens' ratings against GET /reports/satisfaction, the tracker's flags
as lists with how late in working time, each agency its own, and the failed notices asked of a
real notifier on loopback."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from services.intake.link_mac import link_mac
from services.intake.web import signin
from services.intake.web.dashboard_view import rate_text
from services.intake.web.urls import rating_url
from tests.fixtures.asking_notifier import (  # noqa: F401 (fixtures)
    intake_asking_the_notifier,
    notifier_answering_the_intake,
)
from tests.fixtures.intake import LINK_SECRET, IntakeHarness
from tests.fixtures.notifier import NotifierHarness
from tests.fixtures.tracker import TrackerHarness

PAGE = "/bang-dieu-khien"
FORM = {"content-type": "application/x-www-form-urlencoded"}


def bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def set_cookies(r: httpx.Response) -> dict[str, str]:
    return {c.split("=", 1)[0]: c for c in r.headers.get_list("set-cookie")}


async def sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    form = await client.get(PAGE)
    assert form.status_code == 200
    body = {"token": token, "csrf": csrf_of(form.text)}
    return await client.post(signin.SIGN_IN_PATH, data=body, headers=FORM)


@asynccontextmanager
async def signed_in(h: IntakeHarness, who: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own (its own cookies) on the intake, signed in as ``who``."""
    transport = h.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="http://intake.test") as client:
        r = await sign_in(client, bearer(who))
        assert r.status_code == 303, r.text
        yield client


def text(page: str) -> str:
    """What a person reads: the main part's words, spaces between them made one."""
    main = page.split("<main>", 1)[-1]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", main)).split())


async def test_sign_in_keeps_the_token_in_a_strict_httponly_cookie_and_sign_out_drops_it(
    intake: IntakeHarness,
) -> None:
    client = intake.client
    form = await client.get(PAGE)
    assert form.status_code == 200 and "Đăng nhập" in form.text
    csrf_cookie = set_cookies(form)[signin.CSRF_COOKIE]
    for attribute in ("HttpOnly", "SameSite=strict", f"Path={PAGE}"):
        assert attribute in csrf_cookie, csrf_cookie
    assert "Secure" not in csrf_cookie  # plain HTTP here: a Secure cookie would never return

    r = await client.post(
        signin.SIGN_IN_PATH,
        data={"token": bearer(intake.supervisor), "csrf": csrf_of(form.text)},
        headers=FORM,
    )
    assert r.status_code == 303 and r.headers["location"] == PAGE
    session = set_cookies(r)[signin.SESSION_COOKIE]
    assert session.startswith(f"{signin.SESSION_COOKIE}={bearer(intake.supervisor)};")
    for attribute in ("HttpOnly", "SameSite=strict", f"Path={PAGE}"):
        assert attribute in session, session
    assert set_cookies(r)[signin.CSRF_COOKIE] != csrf_cookie  # a fresh one once signed in

    page = await client.get(PAGE)
    assert page.status_code == 200 and "Tỷ lệ giải quyết đúng hạn" in page.text
    assert "Lãnh đạo UBND-Q1" in text(page.text) and "Đăng xuất" in page.text

    out = await client.post(signin.SIGN_OUT_PATH, data={"csrf": csrf_of(page.text)}, headers=FORM)
    assert out.status_code == 303
    assert "Max-Age=0" in set_cookies(out)[signin.SESSION_COOKIE]
    again = await client.get(PAGE)
    assert "Tỷ lệ giải quyết đúng hạn" not in again.text and 'name="token"' in again.text


async def test_over_https_the_cookies_are_secure(intake: IntakeHarness) -> None:
    transport = intake.client._transport
    async with httpx.AsyncClient(transport=transport, base_url="https://intake.test") as client:
        r = await sign_in(client, bearer(intake.admin))
        assert r.status_code == 303
        for cookie in set_cookies(r).values():
            assert "Secure" in cookie, cookie


async def test_the_forms_need_their_csrf_token(intake: IntakeHarness) -> None:
    client = intake.client
    token = bearer(intake.supervisor)
    form = await client.get(PAGE)
    for sent in ({"token": token}, {"token": token, "csrf": "x" * 43}):
        r = await client.post(signin.SIGN_IN_PATH, data=sent, headers=FORM)
        assert r.status_code == 403 and 'role="alert"' in r.text
        assert signin.SESSION_COOKIE not in set_cookies(r)
    # Without the CSRF cookie (a form posted from another site's page), the field is not enough.
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://intake.test"
    ) as other:
        r = await other.post(
            signin.SIGN_IN_PATH, data={"token": token, "csrf": csrf_of(form.text)}, headers=FORM
        )
        assert r.status_code == 403 and signin.SESSION_COOKIE not in set_cookies(r)

    async with signed_in(intake, intake.supervisor) as browser:
        r = await browser.post(signin.SIGN_OUT_PATH, data={}, headers=FORM)
        assert r.status_code == 403 and signin.SESSION_COOKIE not in set_cookies(r)
        assert "Tỷ lệ giải quyết đúng hạn" in (await browser.get(PAGE)).text  # still signed in
        json_body = await browser.post(
            signin.SIGN_OUT_PATH, json={"csrf": "x"}, headers={"content-type": "application/json"}
        )
        assert json_body.status_code == 415


async def test_only_supervisors_and_admins_sign_in(intake: IntakeHarness) -> None:
    r = await sign_in(intake.client, bearer(intake.clerk))
    assert r.status_code == 403 and "Chỉ lãnh đạo hoặc quản trị viên" in r.text
    assert signin.SESSION_COOKIE not in set_cookies(r)
    r = await sign_in(intake.client, "not-a-token")
    assert r.status_code == 401 and "không đúng" in r.text
    r = await sign_in(intake.client, "")
    assert r.status_code == 422 and "Mã truy cập: chưa nhập." in r.text


async def test_the_json_api_never_takes_the_cookie(intake: IntakeHarness) -> None:
    async with signed_in(intake, intake.admin) as browser:
        assert browser.cookies.get(signin.SESSION_COOKIE) == bearer(intake.admin)
        # Sent as a page elsewhere could make a browser send it, were it not path-bound.
        cookie = {"Cookie": f"{signin.SESSION_COOKIE}={bearer(intake.admin)}"}
        for path in ("/reports/on-time", "/dossiers", "/procedures"):
            r = await browser.get(path, headers=cookie)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"


async def test_a_revoked_token_signs_the_browser_out(intake: IntakeHarness) -> None:
    supervisor = await intake.token("supervisor", "UBND-Q1")
    async with signed_in(intake, supervisor) as browser:
        from services.intake.adapters.tokens import find_principal, revoke_token

        async with intake.service.engine.begin() as conn:
            found = await find_principal(conn, bearer(supervisor))
            assert found is not None
            await revoke_token(conn, found.id, intake.clock())
        intake.service.context.principals.forget()  # no second's wait for the cache
        r = await browser.get(PAGE)
        assert r.status_code == 200 and "Phiên đăng nhập đã hết hạn" in r.text
        assert "Max-Age=0" in set_cookies(r)[signin.SESSION_COOKIE]


# -- what it shows --------------------------------------------------------------------------


async def seed(h: IntakeHarness) -> dict[str, str]:
    """Two procedures of UBND-Q1 (one finished early, one late and one on time), one of
    UBND-Q2; all received this month."""
    await h.procedure("P1", name="Cấp giấy chứng nhận quyền sử dụng đất")
    await h.procedure(
        "P2", name="Đăng ký hộ kinh doanh", time_limit={"value": 1, "unit": "working_days"}
    )
    await h.procedure("P9", agency="UBND-Q2", name="Chứng thực bản sao")
    early = (await h.dossier(procedure_code="P1"))["code"]
    late = (await h.dossier(procedure_code="P2"))["code"]
    in_time = (await h.dossier(procedure_code="P2"))["code"]
    q2_clerk = await h.token("clerk", "UBND-Q2")
    r = await h.client.post("/dossiers", json={**_body("P9")}, headers=q2_clerk)
    assert r.status_code == 201, r.text
    h.clock.advance(hours=1)
    for code in (early, in_time):
        await _act(h, code, "complete")
    h.clock.advance(days=3)
    await _act(h, late, "complete")
    return {"early": early, "late": late, "in_time": in_time, "other": r.json()["code"]}


def _body(procedure: str) -> dict[str, Any]:
    from tests.fixtures.intake import dossier_body

    return dossier_body(procedure_code=procedure)


async def _act(h: IntakeHarness, code: str, action: str) -> None:
    r = await h.client.post(f"/dossiers/{code}/{action}", json={}, headers=h.clerk)
    assert r.status_code == 200, r.text


async def test_the_chart_shows_the_figures_of_the_on_time_report(intake: IntakeHarness) -> None:
    await seed(intake)
    for who in (intake.supervisor, intake.admin):
        report = (await intake.client.get("/reports/on-time", headers=who)).json()
        async with signed_in(intake, who) as browser:
            page = (await browser.get(PAGE)).text
        bars = re.findall(r"<g transform[^>]*>\s*<title>([^<]*)</title>", page)
        expected = []
        for row in report["rows"]:
            counts = row["finished_early"] + row["finished_on_time"]
            finished = counts + row["finished_late"]
            detail = f" ({counts}/{finished} hồ sơ đúng hạn)" if finished else ""
            expected.append(f"{row['procedure_name']}: {rate_text(row['on_time_rate'])}{detail}")
        assert [html.unescape(b) for b in bars] == expected
        assert f"Chung: {rate_text(report['totals']['on_time_rate'])}" in text(page)
    # The supervisor's rows are UBND-Q1's; the admin's, every agency's.
    q1 = (await intake.client.get("/reports/on-time", headers=intake.supervisor)).json()
    assert {r["agency_code"] for r in q1["rows"]} == {"UBND-Q1"}
    assert [r["on_time_rate"] for r in q1["rows"]] == [1.0, 0.5]


async def test_a_period_is_chosen_and_a_bad_one_is_named(intake: IntakeHarness) -> None:
    await seed(intake)
    async with signed_in(intake, intake.admin) as browser:
        october = await browser.get(PAGE, params={"from": "2026-10-01", "to": "2026-10-31"})
        assert october.status_code == 200 and "Chưa có hồ sơ nào trong kỳ." in october.text
        assert 'value="2026-10-01"' in october.text
        one = await browser.get(PAGE, params={"agency": "UBND-Q2"})
        assert "Chứng thực bản sao" in one.text and "Đăng ký hộ kinh doanh" not in one.text
        bad = await browser.get(PAGE, params={"from": "2026-11-31"})
        assert bad.status_code == 422 and "Từ ngày: không phải ngày" in text(bad.text)
        upside = await browser.get(PAGE, params={"from": "2026-11-20", "to": "2026-11-01"})
        assert upside.status_code == 422 and "Từ ngày: không được sau" in text(upside.text)


async def rated(h: IntakeHarness, clerk: dict[str, str], procedure: str, *scores: str) -> None:
    """A dossier of ``procedure`` returned and rated through its link: ease, attitude, on
    time, overall."""
    r = await h.client.post("/dossiers", json=_body(procedure), headers=clerk)
    assert r.status_code == 201, r.text
    dossier = r.json()
    for action in ("complete", "return"):
        done = await h.client.post(f"/dossiers/{dossier['code']}/{action}", headers=clerk)
        assert done.status_code == 200, done.text
    answers = dict(zip(("ease", "attitude", "on_time", "overall"), scores, strict=True))
    page = rating_url("", dossier["code"], link_mac(LINK_SECRET, dossier["id"]))
    r = await h.client.post(page, data=answers)
    assert r.status_code == 200, r.text


async def test_the_ratings_of_the_period_per_procedure(intake: IntakeHarness) -> None:
    await intake.procedure("P1", name="Cấp giấy chứng nhận quyền sử dụng đất")
    await intake.procedure("P2", name="Đăng ký hộ kinh doanh")
    await intake.procedure("P9", agency="UBND-Q2", name="Chứng thực bản sao")
    await rated(intake, intake.clerk, "P1", "5", "5", "5", "5")
    await rated(intake, intake.clerk, "P1", "4", "3", "4", "2")
    await rated(intake, intake.clerk, "P2", "3", "4", "5", "4")
    await rated(intake, await intake.token("clerk", "UBND-Q2"), "P9", "1", "1", "1", "1")
    async with signed_in(intake, intake.supervisor) as browser:
        page = text((await browser.get(PAGE)).text)
        october = text(
            (await browser.get(PAGE, params={"from": "2026-10-01", "to": "2026-10-31"})).text
        )
    shown = page.split("Mức độ hài lòng", 1)[1]
    # UBND-Q1's three answers, not UBND-Q2's; a share of 4 or 5 overall, the mean of each.
    assert shown == (
        " (3 đánh giá) Hài lòng: 66,7 % · điểm trung bình (trên 5): Dễ thực hiện 4 · Thái độ 4"
        " · Đúng hẹn 4,67 · Hài lòng chung 3,67"
        " Cấp giấy chứng nhận quyền sử dụng đất 2 đánh giá · hài lòng 50 %"
        " Dễ thực hiện 4,5 · Thái độ 4 · Đúng hẹn 4,5 · Hài lòng chung 3,5"
        " Đăng ký hộ kinh doanh 1 đánh giá · hài lòng 100 %"
        " Dễ thực hiện 3 · Thái độ 4 · Đúng hẹn 5 · Hài lòng chung 4"
    )
    # The figures of GET /reports/satisfaction, from the same function.
    report = (await intake.client.get("/reports/satisfaction", headers=intake.supervisor)).json()
    assert report["totals"]["answers"] == 3 and report["totals"]["satisfied_rate"] == 0.6667
    assert [row["mean_overall"] for row in report["rows"]] == [3.5, 4.0]
    assert "Mức độ hài lòng (0 đánh giá) Chưa có đánh giá nào trong kỳ." in october
    async with signed_in(intake, intake.admin) as browser:
        every = text((await browser.get(PAGE)).text)
    assert "Mức độ hài lòng (4 đánh giá) Hài lòng: 50 %" in every
    assert "Chứng thực bản sao 1 đánh giá · hài lòng 0 %" in every


async def test_overdue_with_how_late_in_working_time_and_due_soon(tracker: TrackerHarness) -> None:
    h = tracker.intake
    await h.procedure("P1", time_limit={"value": 1, "unit": "working_days"})
    await h.procedure("P9", agency="UBND-Q2", time_limit={"value": 1, "unit": "working_days"})
    # Office hours 08-12 and 13-17: Monday 09:00 is due Tuesday 09:00; Monday 12:00 (lunch)
    # counts from 13:00, due Tuesday 12:00.
    first = (await h.dossier(procedure_code="P1"))["code"]
    q2_clerk = await h.token("clerk", "UBND-Q2")
    q2 = (await h.client.post("/dossiers", json=_body("P9"), headers=q2_clerk)).json()["code"]
    h.clock.advance(hours=3)
    second = (await h.dossier(procedure_code="P1"))["code"]

    h.clock.now = h.clock.now.replace(day=17, hour=10, minute=0)  # Tuesday
    await tracker.flags_to_intake()
    async with signed_in(h, h.supervisor) as browser:
        page = text((await browser.get(PAGE)).text)
    overdue, due_soon = sections(page)
    assert overdue.startswith("Hồ sơ quá hạn (1)") and due_soon.startswith("Hồ sơ sắp đến hạn (1)")
    assert (
        f"{first} Cấp giấy chứng nhận quyền sử dụng đất Hạn: 09:00 17/11/2026 · trễ 1 giờ"
        in overdue
    )
    assert (
        f"{second} Cấp giấy chứng nhận quyền sử dụng đất Hạn: 12:00 17/11/2026 · còn 2 giờ"
        in due_soon
    )
    assert q2 not in page  # another agency's

    h.clock.now = h.clock.now.replace(day=18)  # Wednesday 10:00
    await tracker.flags_to_intake()
    async with signed_in(h, h.supervisor) as browser:
        overdue, due_soon = sections(text((await browser.get(PAGE)).text))
    assert overdue.startswith("Hồ sơ quá hạn (2)") and due_soon.startswith("Hồ sơ sắp đến hạn (0)")
    # A working day and an hour; Tuesday 13-17 and Wednesday 08-10.
    name = "Cấp giấy chứng nhận quyền sử dụng đất"
    assert f"{first} {name} Hạn: 09:00 17/11/2026 · trễ 1 ngày 1 giờ {second}" in overdue
    assert overdue.endswith(f"{second} {name} Hạn: 12:00 17/11/2026 · trễ 6 giờ")
    async with signed_in(h, h.admin) as browser:
        overdue, _ = sections(text((await browser.get(PAGE)).text))
    assert overdue.startswith("Hồ sơ quá hạn (3)") and q2 in overdue


def sections(page: str) -> tuple[str, str]:
    """The overdue list's words and the due-soon list's."""
    overdue = "Hồ sơ quá hạn" + page.split("Hồ sơ quá hạn", 1)[1]
    overdue, due_soon = overdue.split("Hồ sơ sắp đến hạn", 1)
    return overdue.strip(), "Hồ sơ sắp đến hạn" + due_soon.split("Tin nhắn, bưu gửi", 1)[0]


async def test_failed_notices_are_asked_of_the_notifier(
    notifier_on_loopback: NotifierHarness,
) -> None:
    n = notifier_on_loopback
    await n.intake.procedure()
    code = (await n.intake.dossier())["code"]
    await n.feed()
    await n.dispatch()
    (message,) = n.sms.messages.values()
    receipt = {"message_id": message["message_id"], "status": "failed", "error": "số không có"}
    assert (await n.client.post("/sms/receipts", json=receipt)).status_code == 202
    async with signed_in(n.intake, n.intake.supervisor) as browser:
        raw = (await browser.get(PAGE)).text
        earlier = text(
            (await browser.get(PAGE, params={"from": "2026-10-01", "to": "2026-10-31"})).text
        )
    failed = text(raw).split("Tin nhắn, bưu gửi không thành công", 1)[1]
    assert failed.startswith(" (1) 09:00 16/11/2026 · SMS · Công dân +8491*****78")
    assert f"{code} số không có" in failed
    assert "912345678" not in raw  # the phone, masked by the notifier
    assert "Tin nhắn, bưu gửi không thành công (0)" in earlier  # not in October
    async with signed_in(n.intake, await n.intake.token("supervisor", "UBND-Q2")) as browser:
        other = text((await browser.get(PAGE)).text)
    assert "Tin nhắn, bưu gửi không thành công (0)" in other and code not in other


async def test_the_notifier_down_leaves_the_rest_of_the_page(intake: IntakeHarness) -> None:
    await seed(intake)  # nothing listens where the intake asks the notifier
    async with signed_in(intake, intake.supervisor) as browser:
        r = await browser.get(PAGE)
    assert r.status_code == 200
    page = text(r.text)
    assert "dịch vụ gửi tin không trả lời" in page and "Đăng ký hộ kinh doanh: 50 %" in page
