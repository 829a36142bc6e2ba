"""motcua's version, as installed (pyproject.toml's): `motcua --version`, the OpenAPI
document, `GET /`."""

from __future__ import annotations

from functools import cache
from importlib.metadata import PackageNotFoundError, version


@cache
def motcua_version() -> str:
    try:
        return version("motcua")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
