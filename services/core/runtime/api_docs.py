"""/docs, the interactive API page, served whole from the package: an office's network may not
reach a CDN, and the page must not break (nor tell a third party who reads it) for that.

FastAPI's recipe "self-hosting JavaScript and CSS for docs": its own /docs and /redoc are
turned off (host.build_app), and this page loads Swagger UI's bundle, stylesheet and icon
from swagger_ui/, vendored from the npm package swagger-ui-dist with its licence (its
README.md says which version and how to update it). ReDoc is not served: it would need a
second bundle to show the same document.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
# The files the page loads, and their media types: nothing else of the folder is served.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
# Swagger UI would otherwise fetch a badge from validator.swagger.io: a request off the
# premises each time the page is opened, carrying the document's address.
PARAMETERS = {"validatorUrl": None}
# A day: the files change only with motcua's version, and /docs is opened now and then.
ASSET_CACHE = "public, max-age=86400"


def _folder() -> Path:
    return Path(str(resources.files(__package__) / "swagger_ui"))


def docs_router(title: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    folder = _folder()

    @router.get(DOCS_PATH)
    async def swagger_ui(request: Request) -> HTMLResponse:
        # Behind a proxy that serves motcua under a prefix, as FastAPI's own /docs does.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters=PARAMETERS,
        )

    @router.get(ASSETS_PATH + "/{name}")
    async def asset(name: str) -> FileResponse:
        media_type = ASSETS.get(name)
        if media_type is None:
            raise HTTPException(404, "not found")
        return FileResponse(
            folder / name, media_type=media_type, headers={"Cache-Control": ASSET_CACHE}
        )

    return router
