"""The intake's questions to the notifier: what was sent about a dossier, and what failed in a
period (schemas.internal_api). The notices live in the notifier's tables, which the intake
never reads; it decides who may see what, then asks over HTTP with MOTCUA_INTERNAL_TOKEN.

A notifier that is not configured, down, slow (over ``TIMEOUT_SECONDS``) or answering
nonsense is `NotifierUnavailable`: the JSON route answers 503, the dashboard says so in its
place and shows the rest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel, SecretStr, ValidationError

from schemas.internal_api import (
    INTERNAL_PREFIX,
    INTERNAL_TOKEN_HEADER,
    DossierNotices,
    FailedNotices,
)

log = structlog.get_logger(__name__)

# A clerk is on the phone with the citizen: better "try again" in 2 s than a page that hangs.
TIMEOUT_SECONDS = 2.0
M = TypeVar("M", bound=BaseModel)


class NotifierUnavailable(Exception):
    """The notifier cannot tell now; the message says why, for the log and the caller."""


class NotifierClient:
    def __init__(
        self,
        base_url: str | None,
        token: SecretStr | None,
        *,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/") if base_url else None
        self._token = token
        self._client = httpx.AsyncClient(timeout=timeout)

    async def dossier_notices(self, dossier_id: str) -> DossierNotices:
        return await self._get(f"/dossiers/{dossier_id}/notices", {}, DossierNotices)

    async def failed_notices(
        self, agency: str | None, start: datetime, end: datetime, limit: int
    ) -> FailedNotices:
        params: dict[str, Any] = {"from": start.isoformat(), "to": end.isoformat()}
        params["limit"] = limit
        if agency:
            params["agency"] = agency
        return await self._get("/notices/failed", params, FailedNotices)

    async def _get(self, path: str, params: dict[str, Any], model: type[M]) -> M:
        if not self.base_url or self._token is None:
            raise NotifierUnavailable("MOTCUA_NOTIFIER_URL or MOTCUA_INTERNAL_TOKEN is not set")
        headers = {INTERNAL_TOKEN_HEADER: self._token.get_secret_value()}
        url = f"{self.base_url}{INTERNAL_PREFIX}{path}"
        try:
            answer = await self._client.get(url, params=params, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("notifier_unreachable", error_class=type(exc).__name__)
            raise NotifierUnavailable(
                f"the notifier did not answer ({type(exc).__name__})"
            ) from exc
        if answer.status_code != 200:
            log.warning("notifier_refused", status=answer.status_code)
            raise NotifierUnavailable(f"the notifier answered {answer.status_code}")
        try:
            return model.model_validate_json(answer.content)
        except ValidationError as exc:
            log.warning("notifier_answer_unreadable", errors=exc.error_count())
            raise NotifierUnavailable("the notifier's answer could not be read") from exc

    async def aclose(self) -> None:
        await self._client.aclose()
