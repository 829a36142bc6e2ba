"""Issue 13, item 11: a code in a text is whole, or a code nobody can look up reaches a citizen
("Ho so UBND-PHUONG-BEN-NGHE-QUAN-1-2..."). The longest agency code there can be, through
the intake, the tracker and the notifier, into every text a citizen or a supervisor gets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.core.domain.codes import AGENCY_CODE_MAX_LENGTH, DOSSIER_CODE_MAX_LENGTH
from services.intake.adapters import tables as intake_tables
from services.intake.link_mac import link_mac
from services.notifier.adapters.postal import JsonlPostalOperator
from tests.fixtures.intake import LINK_SECRET
from tests.fixtures.notifier import NotifierHarness

LONGEST_AGENCY = "UBND-PHUONG-BENNGHE1"
# The texts link to the lookup page with the code in it (issue 14 item 3): the longest code
# in the link too, and the text still within the segment cap.
PUBLIC_URL = "https://tracuu.ubnd-phuong-bennghe.gov.vn"


@pytest.fixture
def notifier_overrides() -> dict[str, Any]:
    return {"public_url": PUBLIC_URL}


ADDRESS = {"street": "12 Lê Lợi", "ward": "Bến Nghé", "district": "Quận 1", "province": "TP HCM"}


def test_the_agency_in_these_tests_is_the_longest_there_can_be() -> None:
    assert len(LONGEST_AGENCY) == AGENCY_CODE_MAX_LENGTH


async def _act(n: NotifierHarness, clerk: dict[str, str], code: str, action: str, **body: object):
    r = await n.intake.client.post(f"/dossiers/{code}/{action}", json=body, headers=clerk)
    assert r.status_code == 200, r.text


async def _dossier(n: NotifierHarness, clerk: dict[str, str], **kw: object) -> str:
    body = {
        "procedure_code": "P-LONG",
        "applicant": {"full_name": "Nguyễn Văn An", "phone": "0912345678"},
        "channel": "counter",
        "return_method": "counter",
        **kw,
    }
    r = await n.intake.client.post("/dossiers", json=body, headers=clerk)
    assert r.status_code == 201, r.text
    code: str = r.json()["code"]
    assert code.startswith(LONGEST_AGENCY + "-") and len(code) <= DOSSIER_CODE_MAX_LENGTH
    return code


@pytest.mark.parametrize("operator", ["http", "embedded"])
async def test_every_text_shows_the_dossier_and_tracking_codes_whole(
    notifier: NotifierHarness, tmp_path: Path, operator: str
) -> None:
    n = notifier
    if operator == "embedded":  # motcua up without a postal URL: codes made by motcua
        n.service.dispatcher.postal = JsonlPostalOperator(tmp_path / "postal.jsonl", n.intake.clock)
    await n.intake.procedure("P-LONG", agency=LONGEST_AGENCY)
    await n.supervisors(agency=LONGEST_AGENCY)
    clerk = await n.intake.token("clerk", LONGEST_AGENCY)

    # Citizens: received, supplement, extension, result by post, result at the counter,
    # returned, rejected.
    posted = await _dossier(n, clerk, return_method="postal", return_address=ADDRESS)
    await _act(n, clerk, posted, "request-supplement", items=["Bản sao CCCD"], reason="thiếu")
    n.intake.clock.advance(hours=1)
    await _act(n, clerk, posted, "receive-supplement")
    new_due = n.intake.clock() + timedelta(days=20)
    await _act(n, clerk, posted, "extend", new_due_at=new_due.isoformat(), reason="xác minh")
    await _act(n, clerk, posted, "complete")
    counter = await _dossier(n, clerk)
    await _act(n, clerk, counter, "complete")
    await _act(n, clerk, counter, "return")
    rejected = await _dossier(n, clerk)
    await _act(n, clerk, rejected, "reject", reason="Không thuộc thẩm quyền")
    late = await _dossier(n, clerk)
    await n.feed()
    await n.dispatch()

    # Supervisors: the parcel came back, a dossier is overdue, the morning digest.
    (ordered,) = [e for e in await n.published() if e["type"] == "postal.ordered"]
    tracking = ordered["payload"]["tracking_code"]
    r = await n.client.post(
        "/postal/callbacks", json={"tracking_code": tracking, "status": "returned"}
    )
    assert r.status_code == 202, r.text
    n.intake.clock.advance(days=8)
    await n.tracker.scan()
    await n.feed()
    n.intake.clock.now = (n.intake.clock.now + timedelta(days=1)).replace(hour=7, minute=30)
    while n.intake.clock.now.weekday() >= 5:  # a working day, for the digest
        n.intake.clock.advance(days=1)
    await n.service.send_digests()
    await n.dispatch()

    notices = await n.notices()
    texts = {x["id"]: x["text"] for x in notices}
    kinds = {x["template"] for x in notices}
    assert kinds >= {
        "received",
        "supplement_requested",
        "supplement_received",
        "extended",
        "result_ready_postal",
        "result_ready_counter",
        "returned_rating",
        "rejected",
        "postal_problem",
        "overdue_alert",
        "daily_digest",
    }, kinds
    for notice in notices:
        text = texts[notice["id"]]
        if notice["dossier_code"]:
            assert f" {notice['dossier_code']} " in text, text
        if notice["template"] in ("result_ready_postal", "postal_problem"):
            assert f" {tracking}" in text, text
        if notice["template"] == "daily_digest":
            assert late in text, text
        if notice["template"] == "received":
            assert text.endswith(f" {PUBLIC_URL}/tra-cuu?code={notice['dossier_code']}"), text
        if notice["template"] == "returned_rating":  # issue 14 item 4: the rating page
            mac = link_mac(LINK_SECRET, notice["dossier_id"])
            rating = f"{PUBLIC_URL}/danh-gia/{notice['dossier_code']}/{mac}"
            assert text.endswith(f" {rating}"), text
            # The intake, which stored no token, opens the notifier's link.
            page = await n.intake.client.get(rating.removeprefix(PUBLIC_URL))
            assert page.status_code == 200 and "Gửi đánh giá" in page.text, page.text
        assert notice["segments"] <= 2, text


async def test_an_agency_code_longer_than_its_maximum_is_refused_naming_the_field(
    notifier: NotifierHarness,
) -> None:
    too_long = LONGEST_AGENCY + "X"
    intake = notifier.intake
    body = {
        "code": "P-TOO-LONG",
        "name": "Thủ tục",
        "agency_code": too_long,
        "time_limit": {"value": 5, "unit": "working_days"},
    }
    r = await intake.client.post("/procedures", json=body, headers=intake.admin)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "agency_code"
    assert str(AGENCY_CODE_MAX_LENGTH) in error["message"]
    r = await intake.client.put(f"/agencies/{too_long}", json={"name": "x"}, headers=intake.admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == "agency_code", r.text


async def test_an_agency_recorded_before_the_limit_receives_no_dossier(
    notifier: NotifierHarness,
) -> None:
    """Its codes would be longer than the texts are budgeted for: the clerk is told at once
    (422 naming the procedure) rather than a citizen getting a code cut short."""
    intake = notifier.intake
    legacy = "UBND-PHUONG-BEN-NGHE-QUAN-1"  # 27 characters, accepted before the limit
    now = intake.clock()
    async with intake.service.engine.begin() as conn:
        await conn.execute(
            intake_tables.agencies.insert().values(
                code=legacy, name="UBND", office_schedule={}, created_at=now
            )
        )
        await conn.execute(
            intake_tables.procedures.insert().values(
                code="P-LEGACY",
                name="Thủ tục",
                agency_code=legacy,
                time_limit_value=5,
                time_limit_unit="working_days",
                postal_return=False,
                created_at=now,
            )
        )
    clerk = await intake.token("clerk", legacy)
    body = {
        "procedure_code": "P-LEGACY",
        "applicant": {"full_name": "Nguyễn Văn An", "phone": "0912345678"},
        "channel": "counter",
        "return_method": "counter",
    }
    r = await intake.client.post("/dossiers", json=body, headers=clerk)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "procedure_code"
    assert f"longer than {AGENCY_CODE_MAX_LENGTH} characters" in error["message"]
