"""The intake's HTML pages, rendered on the server from the package's Jinja2 templates.

Every page is whole in one response: its CSS inlined (templates/style.css), no script, no font
or image from elsewhere, for a cheap phone on 3G and an office whose network reaches no CDN.
The Content-Security-Policy holds the page to that: a browser fetches nothing else for it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from services.core.runtime.request_checks import media_type

TEMPLATES = Environment(
    loader=PackageLoader("services.intake.web", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,  # a name a template expects and is not given fails the test
    trim_blocks=True,
    lstrip_blocks=True,
)

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    # What a page shows of a dossier must not stay in a shared phone's cache, nor its address
    # travel to another site.
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

HTML_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "the page"},
}


def page_responses(*errors: tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """A page's answers for OpenAPI: the page, and each error page with what it means."""
    pages = {status: {"content": {"text/html": {}}, "description": what} for status, what in errors}
    return {**HTML_RESPONSES, **pages}


def form_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A page's form, for OpenAPI (openapi_extra): the pages read it themselves."""
    schema = {"type": "object", "required": required, "properties": properties}
    return {"requestBody": {"required": True, "content": {FORM: {"schema": schema}}}}


def render(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


FORM = "application/x-www-form-urlencoded"
NOT_A_FORM = (415, f"the body is not a form ({FORM})")
NOT_A_FORM_PROBLEM = f"Biểu mẫu phải được gửi dưới dạng {FORM}."  # the page's own words


def is_form(request: Request) -> bool:
    """Whether the body is sent as the pages' forms send it."""
    return media_type(request.headers.get("content-type")) == FORM


async def form_fields(request: Request) -> dict[str, str]:
    """The form's fields, the first of each name; bytes that are not UTF-8 become U+FFFD and
    are refused as a field's bad characters would be."""
    text = (await request.body()).decode("utf-8", errors="replace")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
