"""The intake's HTML pages, rendered on the server from the package's Jinja2 templates.

Every page is whole in one response: its CSS inlined (templates/style.css), no script, no font
or image from elsewhere, for a cheap phone on 3G and an office whose network reaches no CDN.
The Content-Security-Policy holds the page to that: a browser fetches nothing else for it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

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


def html_responses(described: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """A page route's OpenAPI responses: the page, and each status's page with what it means."""
    pages = {
        status: {"content": {"text/html": {}}, "description": description}
        for status, description in described.items()
    }
    return {**HTML_RESPONSES, **pages}


def render(
    template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any
) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


FORM = "application/x-www-form-urlencoded"


def parse_form(body: bytes) -> dict[str, str]:
    """A form's fields, the first of each name; bytes that are not UTF-8 become U+FFFD, which
    the pages refuse as they refuse a field's bad characters."""
    text = body.decode("utf-8", errors="replace")
    fields: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
