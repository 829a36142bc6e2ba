"""Báo cáo tỷ lệ đúng hạn (GET /reports/on-time) on SQLite and PostgreSQL.

Dossiers are made and finished through the real API, at times chosen with the fake clock or
an imported `at`; only the overdue flag, which is the tracker's to raise, is set directly.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from services.intake.adapters import tables as t
from tests.fixtures.intake import IntakeHarness, dossier_body

P1_NAME = "Cấp giấy chứng nhận quyền sử dụng đất"
P2_NAME = "Đăng ký khai sinh"
SUPPLEMENT = {"items": ["Bản sao CCCD"], "reason": "Thiếu giấy tờ"}
ZERO = {
    "received": 0,
    "finished_early": 0,
    "finished_on_time": 0,
    "finished_late": 0,
    "in_progress": 0,
    "overdue": 0,
    "supplement_violations": 0,
    "on_time_rate": None,
}


async def act(h: IntakeHarness, code: str, action: str, **body: Any) -> dict[str, Any]:
    r = await h.client.post(f"/dossiers/{code}/{action}", json=body, headers=h.clerk)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def report(
    h: IntakeHarness, headers: dict[str, str] | None = None, **params: str
) -> httpx.Response:
    return await h.client.get("/reports/on-time", params=params, headers=headers or h.supervisor)


async def mark_overdue(h: IntakeHarness, code: str) -> None:
    async with h.service.engine.begin() as conn:
        await conn.execute(
            t.dossiers.update().where(t.dossiers.c.code == code).values(flag="overdue")
        )


def row_of(body: dict[str, Any], procedure: str) -> dict[str, Any]:
    [row] = [r for r in body["rows"] if r["procedure_code"] == procedure]
    return row


def counts(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ZERO}


async def seed_october_and_november(h: IntakeHarness) -> dict[str, str]:
    """P1 (2 working days) and P2 (10): dossiers of October and of the week of 16 Nov 2026.

    The clock ends at Thu 19 Nov 09:00; see the tests for what each dossier must count as.
    """
    await h.procedure("P1", name=P1_NAME, time_limit={"value": 2, "unit": "working_days"})
    await h.procedure("P2", name=P2_NAME, time_limit={"value": 10, "unit": "working_days"})
    # October, imported: J finished in October, H received then and finished in November,
    # G received then and never finished.
    j = await h.dossier(received_at="2026-10-01T09:00:00+07:00")
    await act(h, j["code"], "complete", at="2026-10-02T10:00:00+07:00")
    hh = await h.dossier(procedure_code="P2", received_at="2026-10-29T09:00:00+07:00")
    assert (await act(h, hh["code"], "complete", at="2026-11-03T10:00:00+07:00"))[
        "outcome"
    ] == "early"
    g = await h.dossier(received_at="2026-10-29T09:00:00+07:00")
    # November: six dossiers received Mon 16 Nov 09:00, all due Wed 18 Nov 09:00.
    a, b, c, d, e, f = [(await h.dossier())["code"] for _ in range(6)]
    assert (await h.client.get(f"/dossiers/{a}", headers=h.clerk)).json()["due_at"] == (
        "2026-11-18T09:00:00+07:00"
    )
    h.clock.advance(days=1)  # Tue 17 Nov 09:00
    assert (await act(h, a, "complete"))["outcome"] == "early"
    await act(h, d, "request-supplement", **SUPPLEMENT)
    await act(h, f, "request-supplement", **SUPPLEMENT)
    h.clock.advance(days=1)  # Wed 18 Nov 09:00: exactly the deadline
    assert (await act(h, b, "complete"))["outcome"] == "on_time"
    await act(h, d, "receive-supplement")
    h.clock.advance(days=1)  # Thu 19 Nov 09:00
    assert (await act(h, c, "complete"))["outcome"] == "late"
    await act(h, c, "return")
    # A second request for the same dossier: the law wanted everything asked at once.
    await act(h, d, "request-supplement", items=["Sổ hộ khẩu"], reason="Phát hiện thêm thiếu sót")
    await act(h, f, "reject", reason="Không bổ sung đủ")
    await mark_overdue(h, e)
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g["code"]}


async def test_counts_each_kind_for_the_month_so_far(intake: IntakeHarness) -> None:
    await seed_october_and_november(intake)
    r = await report(intake)
    assert r.status_code == 200, r.text
    body = r.json()
    # No dates: from the first of the clock's month to its day.
    assert (body["from"], body["to"], body["agency"]) == ("2026-11-01", "2026-11-19", "UBND-Q1")
    assert [(x["agency_code"], x["procedure_code"]) for x in body["rows"]] == [
        ("UBND-Q1", "P1"),
        ("UBND-Q1", "P2"),
    ]
    p1 = row_of(body, "P1")
    assert p1["procedure_name"] == P1_NAME
    assert counts(p1) == {
        "received": 6,  # A–F; not G nor J, received in October
        "finished_early": 1,  # A; not J, finished in October
        "finished_on_time": 1,  # B
        "finished_late": 1,  # C, returned since: still its result
        "in_progress": 3,  # D awaiting a supplement, E, and G from October; not F (rejected)
        "overdue": 1,  # E
        "supplement_violations": 1,  # D (two requests); not F (one)
        "on_time_rate": 0.6667,
    }
    assert counts(row_of(body, "P2")) == {**ZERO, "finished_early": 1, "on_time_rate": 1.0}
    assert body["totals"] == {
        "received": 6,
        "finished_early": 2,
        "finished_on_time": 1,
        "finished_late": 1,
        "in_progress": 3,
        "overdue": 1,
        "supplement_violations": 1,
        "on_time_rate": 0.75,
    }


async def test_an_earlier_period_counts_only_what_happened_in_it(intake: IntakeHarness) -> None:
    await seed_october_and_november(intake)
    r = await report(intake, **{"from": "2026-10-01", "to": "2026-10-31"})
    assert r.status_code == 200, r.text
    body = r.json()
    # G is still pending now and was received by 31 Oct; the November ones were not.
    p1 = {**ZERO, "received": 2, "finished_early": 1, "in_progress": 1, "on_time_rate": 1.0}
    assert counts(row_of(body, "P1")) == p1
    # H was received in October but finished in November, and is no longer pending.
    assert counts(row_of(body, "P2")) == {**ZERO, "received": 1}
    assert body["totals"]["on_time_rate"] == 1.0


async def test_days_are_vietnamese_days(intake: IntakeHarness) -> None:
    await intake.procedure()
    # Both are 31 Oct in UTC; the second is already 1 Nov in Hà Nội.
    await intake.dossier(received_at="2026-10-31T23:30:00+07:00")
    await intake.dossier(received_at="2026-11-01T00:30:00+07:00")
    for day in ("2026-10-31", "2026-11-01"):
        r = await report(intake, **{"from": day, "to": day})
        assert r.status_code == 200, r.text
        assert r.json()["totals"]["received"] == 1, day


async def test_empty_period_gives_zeros_and_no_rate(intake: IntakeHarness) -> None:
    await intake.procedure()
    await intake.dossier()  # Mon 16 Nov
    r = await report(intake, **{"from": "2026-11-02", "to": "2026-11-15"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == []
    assert r.json()["totals"] == ZERO
    # Received, nothing finished: a row, but no rate to speak of.
    today = (await report(intake, **{"from": "2026-11-16"})).json()
    assert counts(row_of(today, "P1")) == {**ZERO, "received": 1, "in_progress": 1}


async def two_agencies(h: IntakeHarness) -> dict[str, str]:
    """One dossier in UBND-Q1 (P1) and two in UBND-Q3 (P3); the Q3 supervisor's headers."""
    await h.procedure("P1")
    await h.procedure("P3", agency="UBND-Q3", name="Chứng thực bản sao")
    await h.dossier()
    q3_clerk = await h.token("clerk", "UBND-Q3")
    for _ in range(2):
        r = await h.client.post(
            "/dossiers", json=dossier_body(procedure_code="P3"), headers=q3_clerk
        )
        assert r.status_code == 201, r.text
    return await h.token("supervisor", "UBND-Q3")


async def test_supervisor_sees_only_their_agency(intake: IntakeHarness) -> None:
    q3_supervisor = await two_agencies(intake)
    own = await report(intake)
    assert own.json()["agency"] == "UBND-Q1"
    assert [x["agency_code"] for x in own.json()["rows"]] == ["UBND-Q1"]
    named = await report(intake, agency="UBND-Q1")
    assert named.status_code == 200
    assert named.json()["totals"]["received"] == 1
    other = await report(intake, agency="UBND-Q3")
    assert other.status_code == 403
    assert other.json()["error"]["field"] == "agency"
    theirs = await report(intake, q3_supervisor)
    assert [(x["procedure_code"], x["received"]) for x in theirs.json()["rows"]] == [("P3", 2)]


async def test_clerks_get_no_report(intake: IntakeHarness) -> None:
    await intake.procedure()
    r = await report(intake, intake.clerk)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "forbidden"
    assert (await intake.client.get("/reports/on-time")).status_code == 401


async def test_admin_sees_all_agencies_or_one(intake: IntakeHarness) -> None:
    await two_agencies(intake)
    everything = (await report(intake, intake.admin)).json()
    assert everything["agency"] is None
    assert [(x["agency_code"], x["received"]) for x in everything["rows"]] == [
        ("UBND-Q1", 1),
        ("UBND-Q3", 2),
    ]
    assert everything["totals"]["received"] == 3
    one = (await report(intake, intake.admin, agency="UBND-Q3")).json()
    assert one["agency"] == "UBND-Q3"
    assert [x["agency_code"] for x in one["rows"]] == ["UBND-Q3"]


async def test_csv_opens_in_excel(intake: IntakeHarness) -> None:
    await seed_october_and_november(intake)
    # A name that a spreadsheet would otherwise run as a formula.
    await intake.procedure("P9", name='=HYPERLINK("http://x")')
    await intake.dossier(procedure_code="P9")
    r = await report(intake, format="csv", **{"from": "2026-11-01", "to": "2026-11-30"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == (
        'attachment; filename="on-time-UBND-Q1-2026-11-01-2026-11-30.csv"'
    )
    assert r.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))
    assert lines[0] == [
        "agency_code",
        "procedure_code",
        "procedure_name",
        "received",
        "finished_early",
        "finished_on_time",
        "finished_late",
        "in_progress",
        "overdue",
        "supplement_violations",
        "on_time_rate",
    ]
    assert lines[1:] == [
        ["UBND-Q1", "P1", P1_NAME, "6", "1", "1", "1", "3", "1", "1", "0.6667"],
        ["UBND-Q1", "P2", P2_NAME, "0", "1", "0", "0", "0", "0", "0", "1.0"],
        ["UBND-Q1", "P9", '\'=HYPERLINK("http://x")', "1", "0", "0", "0", "1", "0", "0", ""],
        ["TOTAL", "", "", "7", "2", "1", "1", "4", "1", "1", "0.75"],
    ]
    assert r.content.endswith(b"\r\n")


async def test_csv_for_all_agencies_is_named_so(intake: IntakeHarness) -> None:
    await intake.procedure()
    r = await report(intake, intake.admin, format="csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"] == (
        'attachment; filename="on-time-all-2026-11-01-2026-11-16.csv"'
    )
    assert r.content.decode("utf-8-sig").splitlines()[1:] == ["TOTAL,,,0,0,0,0,0,0,0,"]


async def test_bad_parameters_name_the_field(intake: IntakeHarness) -> None:
    cases = [
        ({"from": "2026-11-20", "to": "2026-11-19"}, "from"),
        ({"from": "2025-11-16", "to": "2026-11-17"}, "from"),  # 367 days
        ({"from": "2026-12-01"}, "from"),  # after today, the default `to`
        ({"from": "16/11/2026"}, "from"),
        ({"to": "2026-13-01"}, "to"),
        ({"from": "1999-12-31", "to": "2000-01-01"}, "from"),
        ({"to": "9999-12-31"}, "to"),
        ({"format": "xlsx"}, "format"),
        ({"agency": "UBND Q1"}, "agency"),
    ]
    for params, field in cases:
        r = await report(intake, intake.admin, **params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["field"] == field, params
    longest = await report(intake, intake.admin, **{"from": "2025-11-17", "to": "2026-11-17"})
    assert longest.status_code == 200, longest.text
