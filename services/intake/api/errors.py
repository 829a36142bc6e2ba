"""One error shape for every 4xx: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.core.domain.lifecycle import ForbiddenAction
from services.intake.adapters.repository import ConcurrentUpdate
from services.intake.domain.model import InvalidCommand

log = structlog.get_logger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def not_found(what: str = "dossier") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.field), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return JSONResponse(
                error_body("malformed_json", "the body is not valid JSON", "body"), 400
            )
        message = f"{field}: {first.get('msg', 'invalid')}"
        body = error_body("validation_error", message, field)
        body["error"]["details"] = [
            {"field": _field_of(tuple(e.get("loc", ()))), "message": e.get("msg", "")}
            for e in errors
        ]
        return JSONResponse(body, status_code=422)

    @app.exception_handler(InvalidCommand)
    async def _invalid(_request: Request, exc: InvalidCommand) -> JSONResponse:
        return JSONResponse(error_body("invalid_command", str(exc), exc.field), 422)

    @app.exception_handler(ForbiddenAction)
    async def _forbidden(_request: Request, exc: ForbiddenAction) -> JSONResponse:
        return JSONResponse(error_body("forbidden_transition", str(exc), "status"), 409)

    @app.exception_handler(ConcurrentUpdate)
    async def _concurrent(_request: Request, _exc: ConcurrentUpdate) -> JSONResponse:
        message = "the dossier was changed by another request; read it and try again"
        return JSONResponse(error_body("concurrent_update", message), 409)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode at all (e.g. not UTF-8): as bad JSON.
            return JSONResponse(
                error_body("malformed_json", "the body is not valid JSON", "body"), 400
            )
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return JSONResponse(error_body("internal_error", "internal error"), status_code=500)
