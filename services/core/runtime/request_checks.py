"""Checks of a request's form that every route of every service makes, in one place.

The host installs `check_request` as an app-wide dependency, so it runs for each route before
the route's own dependencies (the token check among them): a request malformed on its face is
refused whoever sent it, as a body over the size cap is.
"""

from __future__ import annotations

from fastapi import Request

from services.core.runtime.http_errors import ApiError
from services.core.text import problem_with


async def check_request(request: Request) -> None:
    _json_bodies_only(request)
    _printable_parameters(request)


def _printable_parameters(request: Request) -> None:
    """core.text's rule for path and query parameters, as RequestModel applies it to bodies.

    A NUL in a dossier code used to reach PostgreSQL and come back as a 500."""
    params = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in params:
        in_name = problem_with(name)
        problem = in_name or (problem_with(value) if isinstance(value, str) else None)
        if problem:
            # The parameter as sent, though with its own control characters escaped.
            field = name.encode("unicode_escape").decode() if in_name else name
            raise ApiError(422, "validation_error", f"{field}: {problem}", field)


def _json_bodies_only(request: Request) -> None:
    """A route that takes a body takes JSON, and says so with its Content-Type.

    Without this, FastAPI hands a text/plain or form body to the model as bytes and answers
    422 "not a valid dictionary", which says nothing of the real mistake."""
    route = request.scope.get("route")
    if getattr(route, "body_field", None) is None or not _carries_body(request):
        return
    if not is_json_media_type(request.headers.get("content-type")):
        raise ApiError(
            415,
            "unsupported_media_type",
            "the body must be JSON, sent with Content-Type: application/json",
            "Content-Type",
        )


def _carries_body(request: Request) -> bool:
    # A POST with no body (an action whose fields are all optional) needs no Content-Type.
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def media_type(value: str | None) -> str:
    """A Content-Type's media type, lower case, without its parameters ("" when none)."""
    return (value or "").split(";", 1)[0].strip().lower()


def is_json_media_type(value: str | None) -> bool:
    """application/json or application/<anything>+json, whatever its parameters."""
    kind, _, subtype = media_type(value).partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))
