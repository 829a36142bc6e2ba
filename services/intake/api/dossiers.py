"""Dossier routes: receive, read, list, and the lifecycle actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.concurrency import run_in_threadpool

from schemas.events import Address, Applicant, DossierStatus
from services.core.domain.codes import dossier_code_prefix
from services.core.domain.lifecycle import Action
from services.core.runtime.group_commit import Batch
from services.intake import commands
from services.intake.adapters import catalogue_store, read_model
from services.intake.adapters import repository as repo
from services.intake.adapters.tokens import Principal
from services.intake.api import models as m
from services.intake.api.deps import Caller, Clerk, Ctx, context_of
from services.intake.api.errors import ApiError, not_found
from services.intake.context import IntakeContext
from services.intake.domain import access, actions
from services.intake.domain.model import Document, Dossier
from services.intake.domain.postal import Postal
from services.intake.web.urls import lookup_url

router = APIRouter(tags=["dossiers"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": m.ErrorOut} for code in (400, 401, 403, 404, 409, 422)
}
IDEMPOTENCY_KEY_MAX = 200
IdempotencyKey = Annotated[
    str | None, Header(alias="Idempotency-Key", max_length=IDEMPOTENCY_KEY_MAX)
]


def dossier_out(
    d: Dossier, deadline: read_model.DeadlineView | None = None, postal: Postal | None = None
) -> m.DossierOut:
    """The dossier as clerks see it; ``due_at``, ``flag`` and ``outcome`` come from the read
    model (the tracker's word) when given, else from the aggregate (a receipt just made);
    ``postal`` is the read model's (the notifier's word)."""
    if deadline is None:
        deadline = read_model.DeadlineView.of_dossier(d)
    return m.DossierOut(
        id=d.id,
        code=d.code,
        status=d.status.value,
        agency_code=d.agency_code,
        handling_agency=d.handling_agency,
        procedure_code=d.procedure.code,
        procedure_name=d.procedure.name,
        channel=d.channel,
        return_method=d.return_method,
        return_address=d.return_address.model_dump() if d.return_address else None,
        postal=postal_out(postal),
        applicant=d.applicant.model_dump() if d.applicant else None,
        personal_data_erased_at=d.personal_data_erased_at,
        received_at=d.received_at,
        documents=[m.DocumentOut(name=doc.name, copies=doc.copies) for doc in d.documents],
        due_at=deadline.due_at,
        original_due_at=d.original_due_at,
        flag=deadline.flag,  # type: ignore[arg-type]
        outcome=deadline.outcome,  # type: ignore[arg-type]
        supplement_requests=d.supplement_requests,
        history=[
            m.HistoryOut(action=h.action, at=h.at, status=h.status.value, details=h.details)
            for h in d.history
        ],
    )


def stored_out(stored: read_model.StoredDossier) -> m.DossierOut:
    return dossier_out(stored.dossier, stored.deadline, stored.postal)


def postal_out(postal: Postal | None) -> m.PostalOut | None:
    if postal is None:
        return None
    return m.PostalOut(
        tracking_code=postal.tracking_code, status=postal.status, status_at=postal.status_at
    )


def receive_order(body: m.DossierIn) -> actions.ReceiveDossier:
    """The HTTP body as the use case takes it."""
    return actions.ReceiveDossier(
        procedure_code=body.procedure_code,
        applicant=Applicant.model_validate(body.applicant.model_dump()),
        channel=body.channel,
        return_method=body.return_method,
        return_address=Address.model_validate(body.return_address.model_dump())
        if body.return_address
        else None,
        received_at=body.received_at,
        documents=tuple(Document(doc.name, doc.copies) for doc in body.documents),
    )


def action_of(action: Action, body: m.ActionIn) -> actions.DossierAction:
    """The HTTP body of an action route as the use case takes it."""
    at = body.at
    match action, body:
        case Action.START, m.StartIn():
            return actions.Start(at, body.unit)
        case Action.TRANSFER, m.TransferIn():
            return actions.Transfer(body.to_agency, body.allotted_hours, at)
        case Action.REQUEST_SUPPLEMENT, m.SupplementRequestIn():
            return actions.RequestSupplement(tuple(body.items), body.reason, at)
        case Action.RECEIVE_SUPPLEMENT, _:
            return actions.ReceiveSupplement(at)
        case Action.PAUSE, m.ReasonIn():
            return actions.Pause(body.reason, at)
        case Action.RESUME, _:
            return actions.Resume(at)
        case Action.EXTEND, m.ExtendIn():
            return actions.Extend(body.new_due_at, body.reason, at)
        case Action.COMPLETE, _:
            return actions.Complete(at)
        case Action.RETURN, _:
            return actions.ReturnResult(at)
        case Action.REJECT, m.ReasonIn():
            return actions.Reject(body.reason, at)
        case Action.WITHDRAW, m.ReasonIn():
            return actions.Withdraw(body.reason, at)
    raise AssertionError(f"no body model for {action}")  # pragma: no cover


def may_see(caller: Principal) -> Callable[[Dossier], bool]:
    return partial(access.may_see, caller)


@router.post(
    "/dossiers",
    status_code=201,
    response_model=m.DossierOut,
    responses=ERRORS,
)
async def receive_dossier(
    body: m.DossierIn, request: Request, caller: Clerk, key: IdempotencyKey = None
) -> Any:
    """Tiếp nhận hồ sơ: record a complete dossier and return its receipt and appointment."""
    # The context from the app, not through `Ctx`: one dependency fewer to solve on the
    # busiest route (deps.principal). Its common case skips FastAPI (api.fast_receipt).
    return await receive(context_of(request), body, caller, key)


async def receive(
    ctx: IntakeContext, body: m.DossierIn, caller: Principal, key: str | None
) -> Response:
    """POST /dossiers once its body, caller and key are known: the answer to send, already
    encoded (not validated against the response model a second time)."""
    now = ctx.clock()
    allowed = access.agency_scope(caller)
    order = receive_order(body)
    entry = await ctx.catalogue.get(ctx.engine, body.procedure_code)
    entry, received_at = commands.check_receipt(order, entry, now, allowed)
    fingerprint = commands.request_fingerprint(body.model_dump(mode="json")) if key else ""

    async def record(conn: AsyncConnection, batch: Batch) -> Response:
        # One unit of the batch's transaction (core.runtime.group_commit): it sees the keys
        # and codes of the units before it, and may be run again if a neighbour fails.
        if key:
            stored = await commands.find_idempotent(conn, caller.id, key, fingerprint)
            if stored:
                return stored_answer(stored)
        dossier = await commands.record_receipt(
            conn, batch, order, entry, received_at, ctx.calendars, now
        )
        out = dossier_out(dossier)
        if key:
            kept = commands.StoredResponse(201, out.model_dump(mode="json"))
            await commands.remember_idempotent(conn, caller.id, key, fingerprint, kept, now)
        # Encoded by pydantic in one step: a dict dumped then encoded by the json module
        # cost about a tenth of the intake's CPU a receipt (bench/README.md).
        return Response(out.model_dump_json(), 201, media_type=JSONResponse.media_type)

    try:
        # Ordered by the code counter each unit locks: batches lock counters in one order.
        counter = dossier_code_prefix(entry.procedure.agency_code, received_at.date())
        return await ctx.dossier_writes.run(record, order=counter)
    except IntegrityError:
        if not key:
            raise
        # A concurrent retry with the same key, on another replica, won the race: answer
        # with its result.
        async with ctx.engine.connect() as conn:
            stored = await commands.find_idempotent(conn, caller.id, key, fingerprint)
        if stored is None:
            raise
        return stored_answer(stored)


def stored_answer(stored: commands.StoredResponse) -> Response:
    """The answer kept with an Idempotency-Key, sent again."""
    return JSONResponse(stored.body, status_code=stored.status_code)


@router.get("/dossiers/{code}", response_model=m.DossierOut, responses=ERRORS)
async def get_dossier(code: Annotated[str, Path(max_length=64)], ctx: Ctx, caller: Caller) -> Any:
    async with ctx.engine.connect() as conn:
        found = await repo.load_dossier(conn, code)
    if found is None or not may_see(caller)(found.dossier):
        raise not_found()
    return stored_out(found)


@router.get(
    "/dossiers/{code}/receipt.pdf",
    response_class=Response,
    responses={
        200: {
            "content": {"application/pdf": {}},
            "description": "Giấy tiếp nhận hồ sơ và hẹn trả kết quả, A4, to print",
        },
        **ERRORS,
    },
)
async def get_receipt_slip(
    code: Annotated[str, Path(max_length=64)], request: Request, ctx: Ctx, caller: Clerk
) -> Response:
    """The receipt slip of the dossier as it stands: its current appointment, and which slip
    of the dossier it is (lần 2 after a supplement or an extension). 404 as GET
    /dossiers/{code}."""
    async with ctx.engine.connect() as conn:
        found = await repo.load_dossier(conn, code)
        if found is None or not may_see(caller)(found.dossier):
            raise not_found()
        dossier = found.dossier
        agency = await catalogue_store.get_agency(conn, dossier.agency_code)
    # Without MOTCUA_PUBLIC_URL, the address the clerk reached us on: her office's network
    # is where the slip's reader will be.
    url = lookup_url(ctx.settings.public_url or str(request.base_url), dossier.code)
    due_at = found.deadline.due_at
    # Laying out and subsetting the fonts takes about 0.1 s of CPU: off the event loop.
    pdf = await run_in_threadpool(
        _slip, dossier, agency.name if agency else dossier.agency_code, url, due_at
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            # A code is ASCII letters, digits, "_.-" (core.domain.codes): safe in a header.
            "Content-Disposition": f'inline; filename="{dossier.code}.pdf"',
            # It holds the applicant's name and phone: no cache keeps a copy.
            "Cache-Control": "no-store",
        },
    )


def _slip(dossier: Dossier, agency_name: str, url: str, due_at: datetime | None) -> bytes:
    # Imported at the first slip, in the worker thread: fpdf, its font tools and segno take
    # 0.4 s of CPU to import, which every process that imports the intake's routes (each
    # start of `motcua up`'s two processes, of `motcua intake`) paid for a page few print.
    from services.intake.receipt_slip import receipt_slip

    return receipt_slip(dossier, agency_name, url, due_at)


@router.get("/dossiers", response_model=m.DossierPage, responses=ERRORS)
async def list_dossiers(
    ctx: Ctx,
    caller: Caller,
    status: Annotated[DossierStatus | None, Query()] = None,
    agency: Annotated[str | None, Query(max_length=32)] = None,
    flag: Annotated[m.FlagName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    if agency and not access.may_see_agency(caller, agency):
        raise ApiError(403, "forbidden", "you may list only your own agency's dossiers", "agency")
    try:
        before = read_model.decode_cursor(cursor) if cursor else None
    except ValueError:
        raise ApiError(
            422, "validation_error", "cursor: not a cursor we issued", "cursor"
        ) from None
    async with ctx.engine.connect() as conn:
        page, next_cursor = await read_model.dossier_page(
            conn,
            visible_to_agency=access.agency_scope(caller),
            status=status,
            agency=agency,
            flag=flag,
            limit=limit,
            before_seq=before,
        )
    items = [stored_out(stored) for stored in page]
    return m.DossierPage(items=items, next_cursor=next_cursor)


def _action_route(action: Action, body_model: type[m.ActionIn]) -> None:
    async def act(code: str, ctx: Ctx, caller: Principal, body: Any = None) -> Any:
        asked = action_of(action, body or body_model())
        now = ctx.clock()
        found = await commands.act(ctx.engine, code, asked, ctx.calendars, now, may_see(caller))
        if found is None:
            raise not_found()
        ctx.wake_relay()
        return stored_out(found)

    # Annotations are set here, as objects, because each route has its own body model; a
    # body whose fields all have defaults may be left out ({} is implied).
    body_required = any(f.is_required() for f in body_model.model_fields.values())
    act.__annotations__ = {
        **act.__annotations__,
        "code": Annotated[str, Path(max_length=64)],
        "ctx": Ctx,
        "caller": Clerk,
        "body": body_model if body_required else body_model | None,
        "return": Any,
    }
    if body_required:
        act.__defaults__ = None
        act.__kwdefaults__ = None
    act.__name__ = action.value.replace("-", "_")
    act.__doc__ = f"Lifecycle action `{action.value}`; 409 when the current status forbids it."
    router.add_api_route(
        f"/dossiers/{{code}}/{action.value}",
        act,
        methods=["POST"],
        response_model=m.DossierOut,
        responses=ERRORS,
        name=act.__name__,
    )


ACTION_BODIES: dict[Action, type[m.ActionIn]] = {
    Action.START: m.StartIn,
    Action.TRANSFER: m.TransferIn,
    Action.REQUEST_SUPPLEMENT: m.SupplementRequestIn,
    Action.RECEIVE_SUPPLEMENT: m.ActionIn,
    Action.PAUSE: m.ReasonIn,
    Action.RESUME: m.ActionIn,
    Action.EXTEND: m.ExtendIn,
    Action.COMPLETE: m.ActionIn,
    Action.RETURN: m.ActionIn,
    Action.REJECT: m.ReasonIn,
    Action.WITHDRAW: m.ReasonIn,
}
for _action, _body in ACTION_BODIES.items():
    _action_route(_action, _body)
