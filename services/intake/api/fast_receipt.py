"""POST /dossiers on its common path without FastAPI's routing and dependency solving.

A receipt is the busiest request a one-stop office makes. Under load FastAPI spent about a
fifth of the intake's CPU on it finding the route among the included routers and solving
its dependencies (the app's request checks, the bearer scheme, the role, the header, the
body), more than recording the dossier (bench/README.md, "Intake throughput").

This route is placed first in the application's router. It serves the request itself only
when everything about it is ordinary: JSON, no query string, a known clerk's or admin's
bearer token, an Idempotency-Key within its length (or none), and a body that is a valid
dossier. Then it calls the very function the FastAPI route calls (``dossiers.receive``), so
the receipt, its errors (raised to the application's handlers, as there) and its answer
are the same. Anything else, it hands the request, its body replayed, to the application's
router again with itself out of the way: the FastAPI route then answers as it always has,
with the one set of error messages and the OpenAPI description, which stay there.
"""

from __future__ import annotations

from fastapi.security.utils import get_authorization_scheme_param
from pydantic import ValidationError
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from services.core.runtime.request_checks import is_json_media_type
from services.intake.adapters.tokens import Principal
from services.intake.api import dossiers
from services.intake.api import models as m
from services.intake.api.deps import CLERK_ROLES, principal_of_token
from services.intake.context import IntakeContext

PATH = "/dossiers"
_ASIDE = "motcua.fast_receipt.aside"  # scope key: the request goes the FastAPI way


class FastReceiptRoute(Route):
    """The route, first in the router; steps aside for a request handed back."""

    def __init__(self, ctx: IntakeContext) -> None:
        super().__init__(PATH, FastReceipt(ctx), methods=["POST"], include_in_schema=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get(_ASIDE):
            return Match.NONE, {}
        match, child = super().matches(scope)
        if match is Match.FULL:
            child["route"] = self  # the request log and metrics name the route by its path
        return match, child


class FastReceipt:
    """The ASGI application behind FastReceiptRoute."""

    def __init__(self, ctx: IntakeContext) -> None:
        self.ctx = ctx
        self.served = 0  # requests answered here, and handed back: what the tests look at
        self.handed_back = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller, key = await self._ordinary(scope)
        if caller is None:
            await self._hand_back(scope, receive, send)
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client went away, or BodyLimit answered 413 already
        try:
            dossier = m.DossierIn.model_validate_json(body)
        except ValidationError:
            await self._hand_back(scope, _replay(body, receive), send)
            return
        self.served += 1
        answer = await dossiers.receive(self.ctx, dossier, caller, key)
        await answer(scope, receive, send)

    async def _hand_back(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.handed_back += 1
        scope[_ASIDE] = True
        await scope["router"](scope, receive, send)

    async def _ordinary(self, scope: Scope) -> tuple[Principal | None, str | None]:
        """The caller and the Idempotency-Key of an ordinary request; (None, None) for any
        other, which the FastAPI route answers."""
        if scope.get("query_string"):
            return None, None
        authorization = content_type = key = None
        for name, value in scope["headers"]:
            # The first of each, as Starlette's Headers.get reads them.
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
            elif name == b"idempotency-key" and key is None:
                key = value.decode("latin-1")
        if not is_json_media_type(content_type):
            return None, None
        if key is not None and len(key) > dossiers.IDEMPOTENCY_KEY_MAX:
            return None, None
        scheme, token = get_authorization_scheme_param(authorization)
        if not authorization or scheme.lower() != "bearer" or not token:
            return None, None
        caller = await principal_of_token(self.ctx, token)
        if caller is None or caller.role not in CLERK_ROLES:
            return None, None
        return caller, key


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` with the body already read given back first."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
