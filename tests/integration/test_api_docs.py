"""/docs works offline: the page and everything it loads are served by motcua itself, from the
package, and nothing on it points off the premises (no CDN, no validator badge)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from tests.fixtures.intake import IntakeHarness


class References(HTMLParser):
    """Every address the page makes the browser load: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append(value)


async def test_the_docs_page_loads_only_what_the_app_serves(intake: IntakeHarness) -> None:
    page = await intake.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parser = References()
    parser.feed(page.text)
    base = str(intake.client.base_url)
    assert len(parser.urls) == 3, parser.urls  # the bundle, the stylesheet, the icon
    expected_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in parser.urls:
        absolute = urljoin(base + "/docs", url)
        assert urlsplit(absolute).netloc == urlsplit(base).netloc, url
        served = await intake.client.get(absolute)
        assert served.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert served.headers["content-type"].startswith(expected_types[suffix]), url
        assert len(served.content) > 100, url
    bundle = await intake.client.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content
    # The script on the page loads the document from here, and asks no validator elsewhere.
    assert "url: '/openapi.json'" in page.text
    assert '"validatorUrl": null' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    assert (await intake.client.get("/openapi.json")).status_code == 200


async def test_only_the_pages_files_are_served_and_redoc_is_off(intake: IntakeHarness) -> None:
    for path in (
        "/docs/assets/LICENSE",
        "/docs/assets/README.md",
        "/docs/assets/..%2Fapi_docs.py",
        "/docs/assets/%2E%2E%2Fhost.py",
        "/redoc",
    ):
        assert (await intake.client.get(path)).status_code == 404, path
