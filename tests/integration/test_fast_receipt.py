"""POST /dossiers's common path (api.fast_receipt) answers as the FastAPI route does, and
hands every other request to it: the same receipt, the same errors, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.responses import JSONResponse

from services.intake.api.fast_receipt import FastReceipt
from tests.fixtures.intake import IntakeHarness, dossier_body


def fast(intake: IntakeHarness) -> FastReceipt:
    route = intake.service.fast_receipt
    assert isinstance(route.app, FastReceipt)
    return route.app


def without_identity(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k not in ("id", "code")}


async def test_an_ordinary_receipt_is_served_there_and_answers_as_the_route_does(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    body = dossier_body()
    served = await intake.client.post("/dossiers", json=body, headers=intake.clerk)
    assert served.status_code == 201, served.text
    assert (fast(intake).served, fast(intake).handed_back) == (1, 0)
    # A query string is not ordinary: the same dossier goes the FastAPI way.
    routed = await intake.client.post("/dossiers?via=fastapi", json=body, headers=intake.clerk)
    assert routed.status_code == 201, routed.text
    assert (fast(intake).served, fast(intake).handed_back) == (1, 1)
    assert without_identity(served.json()) == without_identity(routed.json())
    assert served.headers["content-type"] == routed.headers["content-type"] == "application/json"
    # Encoded by pydantic, byte for byte as Starlette's JSONResponse encodes the same dict.
    assert served.content == JSONResponse(served.json()).body
    for answer in (served, routed):
        found = await intake.client.get(f"/dossiers/{answer.json()['code']}", headers=intake.clerk)
        assert found.status_code == 200 and found.json()["id"] == answer.json()["id"]


BAD_BODY = dossier_body(applicant={"full_name": "Nguyễn Văn An", "phone": "12"})


@pytest.mark.parametrize(
    ("case", "status", "field"),
    [
        ("text/plain", 415, "Content-Type"),
        ("no token", 401, "Authorization"),
        ("unknown token", 401, "Authorization"),
        ("basic scheme", 401, "Authorization"),
        ("supervisor", 403, None),
        ("key too long", 422, "Idempotency-Key"),
        ("invalid body", 422, "applicant.phone"),
        ("malformed JSON", 400, "body"),
        ("empty body", 422, "body"),
    ],
)
async def test_anything_else_is_answered_by_the_route(
    intake: IntakeHarness, case: str, status: int, field: str | None
) -> None:
    await intake.procedure()
    headers = {**intake.clerk, "content-type": "application/json"}
    content = dossier_body_bytes()
    if case == "text/plain":
        headers["content-type"] = "text/plain"
    elif case == "no token":
        del headers["Authorization"]
    elif case == "unknown token":
        headers["Authorization"] = "Bearer not-a-token"
    elif case == "basic scheme":
        headers["Authorization"] = "Basic " + intake.clerk["Authorization"].split()[1]
    elif case == "supervisor":
        headers.update(intake.supervisor)
    elif case == "key too long":
        headers["Idempotency-Key"] = "k" * 201
    elif case == "invalid body":
        content = dossier_body_bytes(BAD_BODY)
    elif case == "malformed JSON":
        content = b'{"procedure_code": "P1",'
    elif case == "empty body":
        content = b""
    r = await intake.client.post("/dossiers", content=content, headers=headers)
    assert r.status_code == status, r.text
    assert r.json()["error"].get("field") == field
    assert (fast(intake).served, fast(intake).handed_back) == (0, 1)
    listed = await intake.client.get("/dossiers", headers=intake.admin)
    assert listed.json()["items"] == []  # nothing written


def dossier_body_bytes(body: dict[str, Any] | None = None) -> bytes:
    return json.dumps(body or dossier_body()).encode()


async def test_an_idempotency_key_is_honoured_there(intake: IntakeHarness) -> None:
    await intake.procedure()
    headers = {**intake.clerk, "Idempotency-Key": "quay-3-0001"}
    first = await intake.client.post("/dossiers", json=dossier_body(), headers=headers)
    again = await intake.client.post("/dossiers", json=dossier_body(), headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.content == again.content  # the kept answer, encoded the same way
    other = dossier_body(channel="online")
    conflict = await intake.client.post("/dossiers", json=other, headers=headers)
    assert conflict.status_code == 422, conflict.text  # the key was used for another body
    assert conflict.json()["error"]["field"] == "Idempotency-Key"
    assert fast(intake).served == 3
    listed = await intake.client.get("/dossiers", headers=intake.admin)
    assert [d["code"] for d in listed.json()["items"]] == [first.json()["code"]]


async def test_its_errors_are_the_applications(intake: IntakeHarness) -> None:
    """An error the receipt itself raises (here an unknown procedure) goes to the same
    handlers as the route's."""
    await intake.procedure()
    body = dossier_body(procedure_code="NO-SUCH")
    served = await intake.client.post("/dossiers", json=body, headers=intake.clerk)
    routed = await intake.client.post("/dossiers?via=fastapi", json=body, headers=intake.clerk)
    assert served.status_code == routed.status_code and served.status_code in (404, 422)
    assert served.json() == routed.json()
    assert (fast(intake).served, fast(intake).handed_back) == (1, 1)
