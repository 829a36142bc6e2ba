"""One error shape for every 4xx of every service: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.core.runtime.database import (
    describe_database_error,
    is_transient_database_error,
)

log = structlog.get_logger(__name__)


# A client told "too many" or "unavailable" must be told when to come back: every 429 and 503
# carries Retry-After, in seconds. The rate limits count per minute; a database comes back soon.
DEFAULT_RETRY_AFTER = {429: 60, 503: 1}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


def rate_limited(message: str, retry_after_seconds: float) -> ApiError:
    """A 429 that says when this client's window has room again (whole seconds, at least 1)."""
    seconds = max(1, math.ceil(retry_after_seconds))
    return ApiError(429, "rate_limited", message, retry_after=seconds)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    *,
    retry_after: int | None = None,
) -> JSONResponse:
    """An error in the contract's shape; a 429 or 503 always says when to retry."""
    headers = {}
    if status in DEFAULT_RETRY_AFTER:
        headers["Retry-After"] = str(retry_after or DEFAULT_RETRY_AFTER[status])
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _malformed() -> JSONResponse:
    return JSONResponse(error_body("malformed_json", "the body is not valid JSON", "body"), 400)


def install_common_handlers(app: FastAPI) -> None:
    """Handlers every service needs; a service adds its own domain errors after these."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, exc.field, retry_after=exc.retry_after
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return _malformed()
        message = f"{field}: {first.get('msg', 'invalid')}"
        body = error_body("validation_error", message, field)
        body["error"]["details"] = [
            {"field": _field_of(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in errors
        ]
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode at all (e.g. not UTF-8): as bad JSON.
            return _malformed()
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return error_response(exc.status_code, code, str(exc.detail))

    # A handler for DBAPIError (not Exception) runs inside Starlette's ExceptionMiddleware,
    # which answers without re-raising: the server does not log a traceback quoting SQL.
    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def _database(_request: Request, exc: Exception) -> JSONResponse:
        if is_transient_database_error(exc):  # not our bug: the client may simply retry
            log.warning("database_unavailable", error_type=type(exc).__name__)
            return error_response(503, "unavailable", "the database is unavailable; retry shortly")
        error = describe_database_error(exc) if isinstance(exc, DBAPIError) else ""
        log.error("database_error", error_type=type(exc).__name__, error=error)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
