"""The intake's 4xx: the common shape (core.runtime.http_errors) plus its domain errors."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.core.domain.lifecycle import ForbiddenAction
from services.core.runtime.http_errors import ApiError, error_body, install_common_handlers
from services.intake.adapters.catalogue_store import CodeTaken
from services.intake.adapters.repository import ConcurrentUpdate
from services.intake.directory import NotFound
from services.intake.domain.model import InvalidCommand

__all__ = ["ApiError", "error_body", "install_error_handlers", "not_found"]


def not_found(what: str = "dossier") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def install_error_handlers(app: FastAPI) -> None:
    install_common_handlers(app)

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

    @app.exception_handler(CodeTaken)
    async def _taken(_request: Request, exc: CodeTaken) -> JSONResponse:
        return JSONResponse(error_body("already_exists", str(exc), exc.field), 409)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(error_body("not_found", str(exc), exc.field), 404)
