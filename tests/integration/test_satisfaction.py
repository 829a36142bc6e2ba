"""Issue 14 item 4: satisfaction (SIPAS), on SQLite and PostgreSQL. The rating page a returned
dossier's SMS links to (GET and POST /danh-gia/{code}/{mac}): one answer per dossier, two at
once included; a forged link is an unknown one; a dossier not returned cannot be rated; bad
answers are named. The report per agency and procedure in JSON and CSV, and the comment erased
with the applicant's data. The SMS and its link: test_codes_in_texts.py; the page in a
browser: tests/e2e/test_pages.py.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from services.intake import privacy
from services.intake.adapters import tables as t
from services.intake.link_mac import link_mac
from services.intake.web.urls import rating_url
from tests.fixtures.intake import LINK_SECRET, IntakeHarness, dossier_body

ANSWERS = {"ease": "4", "attitude": "5", "on_time": "3", "overall": "4"}
PERSONAL = ("Nguyễn Văn An", "912345678", "001203004567")


def link(dossier: dict[str, Any], secret: str = LINK_SECRET) -> str:
    return rating_url("", dossier["code"], link_mac(secret, dossier["id"]))


def text_of(page: httpx.Response) -> str:
    body = re.sub(r"<style>.*?</style>", " ", page.text, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


async def act(h: IntakeHarness, code: str, action: str, **body: Any) -> None:
    r = await h.client.post(f"/dossiers/{code}/{action}", json=body, headers=h.clerk)
    assert r.status_code == 200, r.text


async def returned(h: IntakeHarness, **kw: Any) -> dict[str, Any]:
    d = await h.dossier(**kw)
    await act(h, d["code"], "complete")
    await act(h, d["code"], "return")
    return d


async def answer(h: IntakeHarness, address: str, **fields: str) -> httpx.Response:
    return await h.client.post(address, data={**ANSWERS, **fields})


async def rows(h: IntakeHarness) -> list[dict[str, Any]]:
    async with h.service.engine.connect() as conn:
        found = await conn.execute(sa.select(t.ratings).order_by(t.ratings.c.answered_at))
        return [dict(r._mapping) for r in found]


async def test_the_link_of_a_returned_dossier_opens_four_questions(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await returned(intake)
    page = await intake.client.get(link(d))
    assert page.status_code == 200, page.text
    words = text_of(page)
    assert f"Hồ sơ {d['code']}" in words and "Cấp giấy chứng nhận quyền sử dụng đất" in words
    for name in ANSWERS:
        # Five labelled choices a question, in a fieldset with its legend.
        choices = re.findall(rf'<label><input type="radio" name="{name}" value="(\d)"', page.text)
        assert choices == ["1", "2", "3", "4", "5"], name
    assert words.count("Rất không hài lòng") == 4 and "<legend>" in page.text
    assert '<textarea id="comment" name="comment"' in page.text and 'maxlength="500"' in page.text
    # Whole and alone, as the lookup page: under 50 KB, nothing fetched from elsewhere.
    assert len(page.content) < 50_000
    assert not re.search(r"""(src|href|action)=["']?(https?:)?//""", page.text)
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    for personal in PERSONAL:
        assert personal not in page.text


async def test_answered_once_and_refused_the_second_time(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await returned(intake)
    intake.clock.advance(hours=2)
    thanks = await answer(intake, link(d), comment="Cán bộ\r\nnhiệt tình")
    assert thanks.status_code == 200, thanks.text
    assert "Cảm ơn ông/bà" in text_of(thanks) and "Đã ghi nhận đánh giá" in text_of(thanks)
    [saved] = await rows(intake)
    assert saved["dossier_id"] == d["id"]
    assert (saved["agency_code"], saved["procedure_code"]) == ("UBND-Q1", "P1")
    assert {k: saved[k] for k in ANSWERS} == {k: int(v) for k, v in ANSWERS.items()}
    assert saved["comment"] == "Cán bộ\nnhiệt tình"  # the browser's CR LF is one line end
    assert saved["answered_at"] == intake.clock()

    again = await answer(intake, link(d), overall="1", comment="")
    assert again.status_code == 409, again.text
    assert "Hồ sơ này đã được đánh giá" in text_of(again)
    assert "Mỗi hồ sơ chỉ được đánh giá một lần" in text_of(again)
    [kept] = await rows(intake)
    assert kept == saved  # the first answer stands
    reopened = await intake.client.get(link(d))
    assert reopened.status_code == 200 and "Hồ sơ này đã được đánh giá" in text_of(reopened)
    assert "<form" not in reopened.text


async def test_two_answers_at_the_same_moment_save_one(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await returned(intake)
    first, second = await asyncio.gather(
        answer(intake, link(d), overall="5"), answer(intake, link(d), overall="2")
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409], (first, second)
    winner = first if first.status_code == 200 else second
    [saved] = await rows(intake)
    assert saved["overall"] == (5 if winner is first else 2)


async def test_a_forged_link_gets_the_page_an_unknown_code_gets(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await returned(intake)
    other = await returned(intake)
    mac = link_mac(LINK_SECRET, d["id"])
    forged = [
        rating_url("", d["code"], link_mac("another-secret", d["id"])),  # another office's key
        rating_url("", d["code"], link_mac(LINK_SECRET, other["id"])),  # another dossier's
        rating_url("", d["code"], ("B" if mac[0] == "A" else "A") + mac[1:]),  # one character
        rating_url("", d["code"], mac[:-1]),  # cut short
        rating_url("", "UBND-Q1-20261116-9999", mac),  # no such dossier
    ]
    pages = [await intake.client.get(address) for address in forged]
    pages += [await answer(intake, address) for address in forged]
    assert {p.status_code for p in pages} == {404}
    assert len({text_of(p) for p in pages}) == 1  # one page: nothing tells them apart
    assert "Không tìm thấy hồ sơ cần đánh giá" in text_of(pages[0])
    assert d["code"] not in pages[0].text
    assert await rows(intake) == []


async def test_a_dossier_not_returned_cannot_be_rated(intake: IntakeHarness) -> None:
    await intake.procedure()
    ready = await intake.dossier()
    await act(intake, ready["code"], "complete")
    rejected = await intake.dossier()
    await act(intake, rejected["code"], "reject", reason="Không thuộc thẩm quyền")
    for d in (ready, rejected):
        page = await intake.client.get(link(d))
        assert page.status_code == 409, page.text
        assert "Hồ sơ chưa được trả kết quả" in text_of(page) and "<form" not in page.text
        refused = await answer(intake, link(d))
        assert refused.status_code == 409, refused.text
    assert await rows(intake) == []


async def test_bad_answers_are_named_and_the_choices_kept(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await returned(intake)
    address = link(d)
    cases = [
        ({"overall": ""}, "Mức độ hài lòng chung của ông/bà: chưa chọn mức đánh giá."),
        ({"ease": "6"}, "Thủ tục hành chính có dễ hiểu, dễ thực hiện không?: mức đánh giá phải"),
        ({"attitude": "4.5"}, "Thái độ của công chức tiếp nhận, giải quyết hồ sơ: mức đánh giá"),
        ({"comment": "x" * 501}, "Góp ý thêm: dài quá 500 ký tự."),
        ({"comment": "ok\x00"}, "Góp ý thêm: có ký tự không hợp lệ."),
    ]
    for fields, problem in cases:
        page = await answer(intake, address, **fields)
        assert page.status_code == 422, (fields, page.text)
        assert problem in text_of(page), (fields, text_of(page))
        assert '<p class="alert" role="alert">' in page.text
    # The answers given are still chosen, to correct only what was wrong.
    page = await answer(intake, address, overall="")
    assert 'name="attitude" value="5" required checked' in page.text
    as_json = await intake.client.post(address, json=ANSWERS)
    assert as_json.status_code == 415, as_json.text
    assert await rows(intake) == []
    assert (await answer(intake, address)).status_code == 200


async def test_without_the_link_secret_no_link_opens(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await returned(intake)
    intake.service.context.settings.link_secret = None
    page = await intake.client.get(link(d))
    assert page.status_code == 404 and "Không tìm thấy hồ sơ cần đánh giá" in text_of(page)


# -- the report ------------------------------------------------------------------------------


async def rate(h: IntakeHarness, d: dict[str, Any], **answers: str) -> None:
    r = await answer(h, link(d), **answers)
    assert r.status_code == 200, r.text


async def test_the_report_per_agency_and_procedure_in_json_and_csv(intake: IntakeHarness) -> None:
    await intake.procedure("P1")
    await intake.procedure("P2", name="Đăng ký khai sinh")
    await intake.procedure("P9", agency="UBND-Q3", name="Thủ tục của Quận 3")
    clerk_q3 = await intake.token("clerk", "UBND-Q3")
    # October: one answer that the November report leaves out.
    intake.clock.now -= timedelta(days=30)
    await rate(intake, await returned(intake), overall="1")
    intake.clock.now += timedelta(days=30)
    p1 = [await returned(intake) for _ in range(3)]
    await rate(intake, p1[0], ease="5", attitude="5", on_time="5", overall="5")
    await rate(intake, p1[1], ease="4", attitude="3", on_time="4", overall="4")
    await rate(intake, p1[2], ease="2", attitude="1", on_time="3", overall="2")
    await rate(intake, await returned(intake, procedure_code="P2"), overall="3")
    await returned(intake, procedure_code="P2")  # returned, never rated: no answer
    q3 = await intake.client.post(
        "/dossiers", json=dossier_body(procedure_code="P9"), headers=clerk_q3
    )
    assert q3.status_code == 201, q3.text
    for action in ("complete", "return"):
        r = await intake.client.post(f"/dossiers/{q3.json()['code']}/{action}", headers=clerk_q3)
        assert r.status_code == 200, r.text
    await rate(intake, q3.json(), overall="5")

    r = await intake.client.get("/reports/satisfaction", headers=intake.supervisor)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["from"], body["to"], body["agency"]) == ("2026-11-01", "2026-11-16", "UBND-Q1")
    assert body["rows"] == [
        {
            "agency_code": "UBND-Q1",
            "procedure_code": "P1",
            "procedure_name": "Cấp giấy chứng nhận quyền sử dụng đất",
            "answers": 3,
            "mean_ease": 3.67,
            "mean_attitude": 3.0,
            "mean_on_time": 4.0,
            "mean_overall": 3.67,
            "satisfied": 2,
            "satisfied_rate": 0.6667,
        },
        {
            "agency_code": "UBND-Q1",
            "procedure_code": "P2",
            "procedure_name": "Đăng ký khai sinh",
            "answers": 1,
            "mean_ease": 4.0,
            "mean_attitude": 5.0,
            "mean_on_time": 3.0,
            "mean_overall": 3.0,
            "satisfied": 0,
            "satisfied_rate": 0.0,
        },
    ]
    assert body["totals"] == {
        "answers": 4,
        "mean_ease": 3.75,
        "mean_attitude": 3.5,
        "mean_on_time": 3.75,
        "mean_overall": 3.5,
        "satisfied": 2,
        "satisfied_rate": 0.5,
    }
    october = await intake.client.get(
        "/reports/satisfaction?from=2026-10-01&to=2026-10-31", headers=intake.supervisor
    )
    assert october.json()["totals"]["answers"] == 1
    assert october.json()["totals"]["mean_overall"] == 1.0

    everyone = await intake.client.get("/reports/satisfaction", headers=intake.admin)
    assert [r["agency_code"] for r in everyone.json()["rows"]] == ["UBND-Q1", "UBND-Q1", "UBND-Q3"]
    assert everyone.json()["totals"]["answers"] == 5 and everyone.json()["agency"] is None
    other = await intake.client.get(
        "/reports/satisfaction?agency=UBND-Q3", headers=intake.supervisor
    )
    assert other.status_code == 403 and other.json()["error"]["field"] == "agency"
    clerk = await intake.client.get("/reports/satisfaction", headers=intake.clerk)
    assert clerk.status_code == 403
    backwards = await intake.client.get(
        "/reports/satisfaction?from=2026-11-10&to=2026-11-01", headers=intake.admin
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["field"] == "from"

    as_csv = await intake.client.get("/reports/satisfaction?format=csv", headers=intake.supervisor)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        "satisfaction-UBND-Q1-2026-11-01-2026-11-16.csv" in (as_csv.headers["content-disposition"])
    )
    assert as_csv.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    lines = list(csv.reader(io.StringIO(as_csv.content.decode("utf-8-sig"))))
    assert lines == [
        ["agency_code", "procedure_code", "procedure_name", "answers", "mean_ease",
         "mean_attitude", "mean_on_time", "mean_overall", "satisfied", "satisfied_rate"],
        ["UBND-Q1", "P1", "Cấp giấy chứng nhận quyền sử dụng đất", "3", "3.67", "3.0", "4.0",
         "3.67", "2", "0.6667"],
        ["UBND-Q1", "P2", "Đăng ký khai sinh", "1", "4.0", "5.0", "3.0", "3.0", "0", "0.0"],
        ["TOTAL", "", "", "4", "3.75", "3.5", "3.75", "3.5", "2", "0.5"],
    ]  # fmt: skip
    empty = await intake.client.get(
        "/reports/satisfaction?from=2026-09-01&to=2026-09-30&format=csv", headers=intake.admin
    )
    assert empty.content.decode("utf-8-sig").splitlines()[-1] == "TOTAL,,,0,,,,,0,"


async def test_the_comment_is_erased_with_the_applicants_data(intake: IntakeHarness) -> None:
    await intake.procedure()
    d = await returned(intake)
    await rate(intake, d, comment="Chị Lan ở quầy 3 rất nhiệt tình, SĐT 0912345678")
    before = (await intake.client.get("/reports/satisfaction", headers=intake.admin)).json()
    intake.clock.advance(days=400)
    recent = await returned(intake)  # closed within the retention: its data stays
    await rate(intake, recent, comment="Tốt")
    retention = timedelta(days=365)
    assert await privacy.erase_closed_dossiers(intake.service.engine, intake.clock(), retention)
    by_dossier = {row["dossier_id"]: row for row in await rows(intake)}
    assert by_dossier[d["id"]]["comment"] is None
    assert by_dossier[d["id"]]["overall"] == 4  # the answers stay, for the report
    assert by_dossier[recent["id"]]["comment"] == "Tốt"
    after = await intake.client.get(
        "/reports/satisfaction?from=2026-11-01&to=2026-11-30", headers=intake.admin
    )
    assert after.json()["rows"] == before["rows"]
    # Its link opens no more: no rating, and no comment, can come after the erasure.
    gone = await answer(intake, link(d), comment="0912345678")
    assert gone.status_code == 404
    assert by_dossier[d["id"]] == {r["dossier_id"]: r for r in await rows(intake)}[d["id"]]
