"""Schemathesis against the intake's own /openapi.json: no 5xx, and every 4xx in our error shape.

The app runs on a migrated database — a SQLite file, and PostgreSQL, which refuses what
SQLite stores (a NUL in a text) — with a fake clock and no broker (events stay in the outbox).
An admin token, a procedure and a dossier are seeded first, and the fuzzer is told their codes
and the applicant's phone, so many generated paths reach real rows instead of 404. Besides the
characters schemathesis draws itself (NUL included), a control character or a bidirectional
override is put into every string of the path, the query or the body of many cases.

Cases come from `APIOperation.as_strategy` under Hypothesis' own `@given`, one pytest test per
operation: schemathesis' lazy `from_fixture(...).parametrize()` fails on pytest 9.2 (it sets
`request.node._nodeid`, which pytest no longer has).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from services.core.runtime.database import create_engine
from services.core.runtime.host import build_app
from services.core.runtime.settings import Settings
from services.core.text import problem_with
from services.intake.adapters.tokens import create_token
from services.intake.app import IntakeService
from tests.fixtures.db import empty_postgres, run_aside
from tests.fixtures.intake import FakeClock, dossier_body, monday_morning

PHONE = "0912345678"
# What is put into strings: NUL, other C0 controls (tab and newline too), DEL, C1 controls,
# bidirectional overrides and isolates.
CONTROLS = ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9f", "\u202e", "\u2066"]
# Examples per operation and database (25 operations): a few hundred cases per database.
ADMIN_EXAMPLES = 12
ANONYMOUS_EXAMPLES = 4
FUZZ_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(HealthCheck),
}


@dataclass(frozen=True)
class Seeded:
    url: str
    data_dir: Path
    admin_token: str
    procedure_code: str
    dossier_code: str


async def _seed(url: str, data_dir: Path) -> Seeded:
    """Token, procedure, dossier — through the API, on a loop of their own."""
    clock = FakeClock(monday_morning())
    service = IntakeService(Settings(data_dir=data_dir), clock=clock, engine=create_engine(url))
    app = build_app([service])
    await service.start()
    try:
        async with service.engine.begin() as conn:
            token = await create_token(conn, "admin", None, "fuzz", clock())
        headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://seed.test") as client:
            r = await client.post(
                "/procedures",
                headers=headers,
                json={
                    "code": "P1",
                    "name": "Cấp giấy phép xây dựng",
                    "agency_code": "UBND-Q1",
                    "time_limit": {"value": 5, "unit": "working_days"},
                    "cutoff_time": "15:00",
                    "postal_return": True,
                },
            )
            assert r.status_code == 201, r.text
            r = await client.post("/dossiers", headers=headers, json=dossier_body())
            assert r.status_code == 201, r.text
            code = r.json()["code"]
    finally:
        await service.stop()
    return Seeded(url, data_dir, token, "P1", code)


def _config(seed: Seeded, *, with_token: bool) -> schemathesis.Config:
    """Known codes and the applicant's phone are mixed into the generated values.

    With a token, the fuzzer does not generate (or drop) the Authorization header itself:
    every case carries the admin token. Without one, it may send made-up bearer tokens."""
    data: dict[str, Any] = {
        "seed": 20261116,
        "generation": {
            "deterministic": True,
            "with-security-parameters": not with_token,
            # schemathesis' defaults, pinned: strings may hold any character, NUL included
            "allow-x00": True,
            "codec": "utf-8",
        },
        "dictionaries": {
            "dossier_codes": {"values": [seed.dossier_code]},
            "agency_codes": {"values": ["UBND-Q1"]},
            "phones": {"values": [PHONE, "+84912345678"]},
            "procedure_codes": {"values": [seed.procedure_code]},
        },
        "parameters": {
            "path.code": {"dictionary": "dossier_codes", "probability": 0.5},
            "path.agency_code": {"dictionary": "agency_codes", "probability": 0.5},
            "query.agency": {"dictionary": "agency_codes", "probability": 0.5},
            "query.phone": {"dictionary": "phones", "probability": 0.5},
            "body.procedure_code": {"dictionary": "procedure_codes", "probability": 0.5},
            "body.applicant.phone": {"dictionary": "phones", "probability": 0.5},
            "body.phone": {"dictionary": "phones", "probability": 0.5},
            "body.agency_code": {"dictionary": "agency_codes", "probability": 0.3},
        },
    }
    return schemathesis.Config.from_dict(data)


# Collected from the app itself (nothing is connected to build it), one test per operation.
_UNCONNECTED = IntakeService(Settings(), engine=create_engine("sqlite+aiosqlite:///:memory:"))
_PATHS = build_app([_UNCONNECTED]).openapi()["paths"]
OPERATIONS = [(method.upper(), path) for path, methods in _PATHS.items() for method in methods]
PROTECTED = {
    (method.upper(), path)
    for path, methods in _PATHS.items()
    for method, operation in methods.items()
    if operation.get("security")
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def seeded(
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Seeded:
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        shutil.copy(sqlite_template / "intake.db", folder / "intake.db")
        url = f"sqlite+aiosqlite:///{folder}/intake.db"
    else:
        url = request.getfixturevalue("postgres_url")
        empty_postgres(url)
    return run_aside(_seed(url, folder))


def _load_schema(seed: Seeded, *, with_token: bool) -> Iterator[Any]:
    """The app with its lifespan run by schemathesis' ASGI transport: loading the schema starts
    the service on the transport's own event loop; shutting the lifespans down stops it."""
    service = IntakeService(
        Settings(data_dir=seed.data_dir, public_lookup_per_minute=100_000),
        clock=FakeClock(monday_morning()),
        engine=create_engine(seed.url),
    )
    app = build_app([service])
    try:
        yield schemathesis.openapi.from_asgi(
            "/openapi.json", app, config=_config(seed, with_token=with_token)
        )
    finally:
        asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def admin_schema(seeded: Seeded) -> Iterator[Any]:
    yield from _load_schema(seeded, with_token=True)


@pytest.fixture(scope="module")
def anonymous_schema(seeded: Seeded) -> Iterator[Any]:
    yield from _load_schema(seeded, with_token=False)


def _error_body(response: Any) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(
            f"{response.status_code} body is not JSON: {response.content!r}"
        ) from None
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), (
        f"{response.status_code} body is not {{'error': {{...}}}}: {body!r}"
    )
    return body["error"]


# The intake is fuzzed alone: a route that asks the notifier answers its documented 503.
ASKS_THE_NOTIFIER = frozenset({"/dossiers/{code}/notices"})


def no_server_error(ctx: Any, response: Any, case: Any) -> None:
    """No 5xx, but the 503 of a route whose answer is the notifier's, which is not there."""
    if response.status_code == 503 and case.operation.path in ASKS_THE_NOTIFIER:
        assert _error_body(response)["code"] == "notifier_unavailable", response.text
        return
    not_a_server_error(ctx, response, case)


def error_shape(_ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx is {"error": {"code": str, "message": str, ...}} (docs/api.md,
    "Errors"); a page's (tag `pages`) is a page saying what is wrong, unless the request was
    refused on its form before the page was asked (core.runtime.request_checks: JSON)."""
    if not 400 <= response.status_code < 500:
        return
    is_page = "pages" in case.operation.definition.raw.get("tags", ())
    if is_page and response.headers.get("content-type", [""])[0].startswith("text/html"):
        assert 'role="alert"' in response.text, response.text
        return
    error = _error_body(response)
    assert isinstance(error.get("code"), str) and error["code"], f"no error.code: {error!r}"
    assert isinstance(error.get("message"), str) and error["message"], f"no message: {error!r}"


def rejected_without_token(_ctx: Any, response: Any, case: Any) -> None:
    """Without a token, a protected operation answers 401, unless the request is refused on
    its form first, whoever sent it: 400 when the JSON is broken, 422 naming a path or query
    parameter that holds a control character."""
    if not case.operation.definition.raw.get("security"):
        return
    error = _error_body(response)
    if response.status_code == 400:
        assert error["code"] == "malformed_json", error
        return
    if response.status_code == 422:
        # schemathesis keeps path parameters percent-encoded, as they go into the URL
        path = {k: unquote(str(v)) for k, v in (case.path_parameters or {}).items()}
        parameters = {**path, **(case.query or {})}
        value = parameters.get(error["field"])
        assert value is not None, f"422 without a token names no parameter: {error!r}"
        assert any(problem_with(str(v)) for v in _values(value)), (value, error)
        return
    assert response.status_code == 401, f"{response.status_code}: {error!r}"
    assert error["code"] == "unauthorized", error


def _values(value: Any) -> list[Any]:
    # schemathesis may hand a query parameter over as a collection, a dict among them (sent
    # as its keys and values): its str() would be the repr, where a control character is
    # spelled as an escape and no longer found.
    if isinstance(value, dict):
        return [*value.keys(), *value.values()]
    return list(value) if isinstance(value, list | tuple | set | frozenset) else [value]


def _with_control(case: Any, where: str | None, char: str) -> Any:
    """The case with `char` put into every string of its path, query or body (or as it is)."""
    if where == "path" and case.path_parameters:
        # kept percent-encoded, as schemathesis keeps them, to go into the URL as they are
        case.path_parameters = _tainted(case.path_parameters, quote(char, safe=""))
    elif where == "query" and case.query:
        case.query = _tainted(case.query, char)
    elif where == "body" and isinstance(case.body, dict | list | str):
        case.body = _tainted(case.body, char)
    return case


def _tainted(value: Any, char: str) -> Any:
    if isinstance(value, str):
        return value[: len(value) // 2] + char + value[len(value) // 2 :]
    if isinstance(value, dict):
        return {key: _tainted(item, char) for key, item in value.items()}
    if isinstance(value, list):
        return [_tainted(item, char) for item in value]
    return value


def _fuzz(
    schema: Any, method: str, path: str, max_examples: int, headers: dict[str, str], checks: list
) -> list[int]:
    """Positive and negative cases for one operation, some of them with a control character
    put in; returns the statuses seen."""
    operation = schema[path][method]
    generated = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    where = st.sampled_from([None, None, "path", "query", "body"])
    strategy = st.builds(_with_control, generated, where, st.sampled_from(CONTROLS))
    statuses: list[int] = []

    @settings(max_examples=max_examples, **FUZZ_SETTINGS)
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        if headers and case.headers:
            case.headers = {k: v for k, v in case.headers.items() if k.lower() != "authorization"}
        response = case.call_and_validate(headers=headers, checks=checks)
        statuses.append(response.status_code)

    run()
    return statuses


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_server_error_with_an_admin_token(
    admin_schema: Any, seeded: Seeded, method: str, path: str
) -> None:
    auth = {"Authorization": f"Bearer {seeded.admin_token}"}
    checks = [no_server_error, error_shape]
    statuses = _fuzz(admin_schema, method, path, ADMIN_EXAMPLES, auth, checks)
    assert statuses, "the fuzzer sent nothing"
    assert 401 not in statuses, "every case should carry the admin token"
    if path in ("/dossiers/{code}", "/public/dossiers/{code}"):
        assert 200 in statuses, "the seeded dossier was never reached"


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_no_token_is_a_clean_401(anonymous_schema: Any, method: str, path: str) -> None:
    checks = [no_server_error, error_shape, rejected_without_token]
    statuses = _fuzz(anonymous_schema, method, path, ANONYMOUS_EXAMPLES, {}, checks)
    assert statuses, "the fuzzer sent nothing"
    if (method, path) in PROTECTED:
        assert 401 in statuses
