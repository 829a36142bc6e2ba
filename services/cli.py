"""The `motcua` command (docs/operations.md, "Commands")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog
import uvicorn
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from services.core.runtime import heap
from services.core.runtime.clock import system_clock
from services.core.runtime.database import create_engine, sqlite_file
from services.core.runtime.logging import configure_logging
from services.core.runtime.migrations import migrated_services, upgrade
from services.core.runtime.settings import SERVICES, Settings
from services.core.runtime.version import motcua_version

log = structlog.get_logger("motcua")

# The files in the data dir of the secrets `motcua up` keeps when their setting is unset.
INTERNAL_TOKEN_FILE = "internal_token"
LINK_SECRET_FILE = "link_secret"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    data_dir = _data_dir(parser, args)
    settings = Settings()
    if data_dir:
        settings = settings.model_copy(update={"data_dir": Path(data_dir)})
    configure_logging(settings.log_level, settings.log_format)
    result: int = args.run(args, settings)
    return result


DATA_DIR_HELP = (
    "data folder: SQLite files, the outbox, the callback token (default ./var or MOTCUA_DATA_DIR)"
)


def _data_dir(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """`--data-dir` before the command or after it, the same option; given twice, it must
    name one folder."""
    before, after = args.global_data_dir, args.data_dir
    if before and after and Path(before).resolve() != Path(after).resolve():
        parser.error(f"--data-dir given twice: {before} and {after}")
    return after or before


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motcua", description=__doc__)
    parser.add_argument("--version", action="version", version=f"motcua {motcua_version()}")
    parser.add_argument("--data-dir", dest="global_data_dir", help=DATA_DIR_HELP)
    # Every command takes --data-dir after its name too (`motcua token create --data-dir X`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", dest="data_dir", help=DATA_DIR_HELP)
    sub = parser.add_subparsers(required=True, metavar="command")

    def command(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str
    ) -> argparse.ArgumentParser:
        return group.add_parser(name, help=help, description=help, parents=[common])

    up = command(sub, "up", "all three services, one command and one folder (embedded default)")
    _serve_options(up, default_port=8000)
    up.set_defaults(run=_up)

    # The second process of `motcua up` (core.runtime.worker_process): not listed, started
    # by `up` with the broker's address and the callback token in its environment.
    workers = sub.add_parser("workers", parents=[common])
    _serve_options(workers, default_port=0)
    workers.add_argument("services", nargs="+", choices=SERVICES)
    workers.set_defaults(run=_workers)

    for service in SERVICES:
        one = command(sub, service, f"the {service} service alone (for containers)")
        _serve_options(one, default_port=8000)
        one.set_defaults(run=_one_service, service=service)

    db = sub.add_parser("db", help="database tasks").add_subparsers(required=True)
    db_up = command(db, "upgrade", "run every configured service's migrations")
    db_up.set_defaults(run=_db_upgrade)

    gateways = sub.add_parser("gateways", help="the SMS gateway and the postal operator")
    check = command(
        gateways.add_subparsers(required=True),
        "check",
        "reach each gateway and check its credentials where it offers a call for it; sends nothing",
    )
    check.set_defaults(run=_gateways_check)

    token = sub.add_parser("token", help="bearer tokens (kept in the intake database)")
    tokens = token.add_subparsers(required=True)
    create = command(tokens, "create", "print a new bearer token")
    create.add_argument("--role", required=True, choices=["clerk", "supervisor", "admin"])
    create.add_argument("--agency", help="agency code (required for clerk and supervisor)")
    create.add_argument("--name", help="who the token is for")
    create.set_defaults(run=_token_create)
    listed = command(tokens, "list", "every token: id, role, agency, name, created, revoked")
    listed.set_defaults(run=_token_list)
    revoke = command(tokens, "revoke", "refuse a token from now on (every replica within 1 s)")
    revoke.add_argument("id", help="the token's id, as `motcua token list` shows it")
    revoke.set_defaults(run=_token_revoke)
    return parser


def _serve_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the network")


def _db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    for service in migrated_services():
        upgrade(service, settings.database_url_for(service))
        log.info("migrated", service=service)
    return 0


def _gateways_check(_args: argparse.Namespace, settings: Settings) -> int:
    """One line per gateway: ok, or why not. Exit 1 when any is not ok."""
    from services.notifier.gateway_check import check_gateways

    results = asyncio.run(check_gateways(settings))
    for name, ok, said in results:
        print(f"{name}: {'ok' if ok else 'NOT OK'}: {said}")
    return 0 if all(ok for _, ok, _ in results) else 1


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from services.intake.adapters.tokens import agency_is_known, create_token

    if args.role != "admin" and not args.agency:
        print("motcua: a clerk or supervisor token needs --agency CODE", file=sys.stderr)
        return 2
    url = settings.database_url_for("intake")
    path = sqlite_file(url)
    new_file = path is not None and not path.exists()
    upgrade("intake", url)

    async def create() -> tuple[str, bool]:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                known = not args.agency or await agency_is_known(conn, args.agency)
                token = await create_token(conn, args.role, args.agency, args.name, system_clock())
                return token, known
        finally:
            await engine.dispose()

    token, known = asyncio.run(create())
    # stdout is the token alone (scripts take it); where it went, and doubts, go to stderr.
    print(f"motcua: token written to {_where(url)}", file=sys.stderr)
    if new_file:
        print("motcua: that database is new: is --data-dir (or MOTCUA_DATA_DIR) the one the "
              "service runs with?", file=sys.stderr)  # fmt: skip
    if not known:
        print(f"motcua: warning: agency {args.agency} has no procedure and no record here yet "
              "(a typo?); the token was made anyway", file=sys.stderr)  # fmt: skip
    print(token)
    return 0


def _token_list(_args: argparse.Namespace, settings: Settings) -> int:
    from services.intake.adapters.tokens import list_tokens

    url = _existing_intake_database(settings)
    if url is None:
        return 2

    async def read() -> list[Any]:
        engine = create_engine(url)
        try:
            async with engine.connect() as conn:
                return await list_tokens(conn)
        finally:
            await engine.dispose()

    print(f"motcua: tokens of {_where(url)}", file=sys.stderr)
    print("\t".join(("id", "role", "agency", "name", "created", "revoked")))
    for info in asyncio.run(read()):
        print("\t".join(_token_columns(info)))
    return 0


def _token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from services.intake.adapters.tokens import revoke_token

    url = _existing_intake_database(settings)
    if url is None:
        return 2

    async def revoke() -> Any:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                return await revoke_token(conn, args.id, system_clock())
        finally:
            await engine.dispose()

    info = asyncio.run(revoke())
    if info is None:
        print(f"motcua: no token {args.id} in {_where(url)}", file=sys.stderr)
        return 1
    print("\t".join(_token_columns(info)))
    return 0


def _token_columns(info: Any) -> list[str]:
    def when(at: Any) -> str:
        return at.isoformat(timespec="seconds") if at else "-"

    name = (info.name or "-").replace("\t", " ").replace("\n", " ")
    return [info.id, info.role, info.agency_code or "-", name, when(info.created_at),
            when(info.revoked_at)]  # fmt: skip


def _where(url: str) -> str:
    """The database, as a person finds it: the SQLite file, or the URL without its password."""
    path = sqlite_file(url)
    return str(path.resolve()) if path else make_url(url).render_as_string(hide_password=True)


def _existing_intake_database(settings: Settings) -> str | None:
    """The intake database's URL; None (and why, on stderr) for a SQLite file that is not
    there: reading or revoking must not make an empty database beside the real one."""
    url = settings.database_url_for("intake")
    path = sqlite_file(url)
    if path is not None and not path.exists():
        print(f"motcua: no intake database at {path.resolve()}: pass the --data-dir the "
              "service runs with (or set MOTCUA_DATA_DIR)", file=sys.stderr)  # fmt: skip
        return None
    return url


def _one_service(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.kafka_bootstrap:
        print("motcua: set MOTCUA_KAFKA_BOOTSTRAP to run one service alone", file=sys.stderr)
        return 2
    if args.service == "notifier":
        with_token = _notifier_callback_token(settings, args.host)
        if with_token is None:
            return 2
        settings = with_token
    from services.core.runtime.host import build_app

    app = build_app(_services(settings, [args.service], settings.kafka_bootstrap))
    _serve(app, args.host, args.port)
    return 0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _db_upgrade(args, settings)
    settings = _kept_link_secret(_kept_internal_token(_kept_callback_token(settings)))
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(_run_embedded(args, settings))
    return 0


def _workers(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.kafka_bootstrap:
        print("motcua: the workers of `motcua up` need MOTCUA_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    with asyncio.Runner(loop_factory=_event_loop_factory()) as runner:
        runner.run(_run_workers(args, settings, settings.kafka_bootstrap))
    return 0


def up_processes(settings: Settings, cores: int | None = None) -> int:
    """One process on a one-core machine (a second would only take turns with the first);
    two otherwise, unless MOTCUA_UP_PROCESSES says."""
    if settings.up_processes:
        return settings.up_processes
    return 2 if (cores if cores is not None else os.cpu_count() or 1) > 1 else 1


def _event_loop_factory() -> Any:
    """uvloop where installed (it comes with uvicorn[standard]): it costs less CPU per
    request and per socket event than asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _kept_callback_token(settings: Settings) -> Settings:
    """MOTCUA_CALLBACK_TOKEN, or the one kept in the data dir (made on first start): the
    callbacks act on nothing without it, and the gateways get it in their callback URLs."""
    if settings.callback_token:
        return settings
    from services.notifier.callback_token import FILE_NAME

    return settings.model_copy(update={"callback_token": _kept(settings, FILE_NAME)})


def _kept_internal_token(settings: Settings) -> Settings:
    """MOTCUA_INTERNAL_TOKEN, or the one kept in the data dir (made on first start): the
    intake's questions to the notifier (services.intake.notifier_client) carry it."""
    if settings.internal_token:
        return settings
    token = SecretStr(_kept(settings, INTERNAL_TOKEN_FILE))
    return settings.model_copy(update={"internal_token": token})


def _kept_link_secret(settings: Settings) -> Settings:
    """MOTCUA_LINK_SECRET, or the one kept in the data dir: the intake and the notifier of
    `motcua up` share it, and the rating links already texted keep opening after a restart."""
    if settings.link_secret:
        return settings
    secret = SecretStr(_kept(settings, LINK_SECRET_FILE))
    return settings.model_copy(update={"link_secret": secret})


def _kept(settings: Settings, name: str) -> str:
    """The secret kept in the data dir's file ``name`` (core.runtime.kept_secrets)."""
    from services.core.runtime.kept_secrets import load_or_create

    secret, path, made = load_or_create(settings.data_dir, name)
    if path.stat().st_mode & 0o077:
        print(f"motcua: {path} is readable by others: chmod 600 it", file=sys.stderr)
    log.info(f"{name}_made" if made else f"{name}_reused", file=str(path))
    return secret


def _notifier_callback_token(settings: Settings, host: str) -> Settings | None:
    """The notifier alone: open to the network, it needs MOTCUA_CALLBACK_TOKEN (the gateways
    must have been given it); on loopback the data dir's own will do. None: refuse to start."""
    from services.notifier.callback_token import is_loopback

    if settings.callback_token or is_loopback(host):
        return _kept_callback_token(settings)
    print(
        f"motcua: the notifier on {host} takes the gateways' callbacks from the network: set "
        "MOTCUA_CALLBACK_TOKEN to a long random secret (e.g. `openssl rand -hex 32`), the "
        "same on every replica, or bind it to 127.0.0.1",
        file=sys.stderr,
    )
    return None


async def _run_embedded(args: argparse.Namespace, settings: Settings) -> None:
    from services.core.runtime.embedded_broker import EmbeddedBroker
    from services.core.runtime.host import build_app
    from services.core.runtime.kafka import ALL_TOPICS, ensure_topics
    from services.core.runtime.replay import GroupOffsets, Replay

    broker: EmbeddedBroker | None = None
    replay: Replay | None = None
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        broker = EmbeddedBroker(log_dir=settings.data_dir / "broker")
        await broker.start()
        bootstrap = broker.bootstrap
        log.info("embedded_broker_started", bootstrap=bootstrap)
        # The embedded broker forgets on every stop: the outboxes replay what it lost.
        replay = Replay(_readers(), GroupOffsets(bootstrap))
    if not settings.callback_base_url:  # the gateways call this process back
        public = f"http://{args.host}:{args.port}"
        settings = settings.model_copy(update={"callback_base_url": public})
    try:
        await ensure_topics(bootstrap, ALL_TOPICS, settings.kafka_partitions)
        hosted: list[Any]
        if up_processes(settings) == 2:
            from services.core.runtime.worker_process import WorkerProcess
            from services.notifier.api.callbacks import router as callbacks

            workers = WorkerProcess(settings, ["tracker", "notifier"], bootstrap, [callbacks])
            # The intake asks the notifier where it runs: the second process's own port
            # (its internal routes are not forwarded from the public one).
            settings = settings.model_copy(update={"notifier_url": workers.base_url})
            hosted = [*_services(settings, ["intake"], bootstrap, replay), workers]
        else:
            settings = settings.model_copy(
                update={"notifier_url": _reachable_url(args.host, args.port)}
            )
            hosted = _services(settings, list(SERVICES), bootstrap, replay)
        server = _Server(_uvicorn_config(build_app(hosted), args.host, args.port))
        server.announce = _announcement(settings, args)
        await server.serve()
    finally:
        if replay:
            await replay.offsets.close()
        if broker:
            await broker.stop()


def _reachable_url(host: str, port: int) -> str:
    """Where this machine reaches a server bound to ``host``: loopback for "every address"."""
    wildcard = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}
    reached = wildcard.get(host, host)
    return f"http://[{reached}]:{port}" if ":" in reached else f"http://{reached}:{port}"


def _announcement(settings: Settings, args: argparse.Namespace) -> str:
    """What `motcua up` says once it answers: where it is, where its data and its texts go,
    and how to make the first token. On stdout, for the person who typed the command (the
    logs are on stderr)."""
    data = settings.data_dir.resolve()
    lines = [
        f"motcua {motcua_version()} is up: http://{args.host}:{args.port}/ (API docs at /docs)",
        f"  data:    {data}",
    ]
    if not settings.sms_gateway_url:
        lines.append(f"  SMS:     {settings.outbox_dir.resolve() / 'sms.jsonl'} (no gateway set)")
    if not settings.postal_api_url:
        lines.append(f"  postal:  {settings.outbox_dir.resolve() / 'postal.jsonl'}")
    if settings.quiet_hours:
        lines.append(
            f"  quiet hours {settings.quiet_hours} (Vietnam time): SMS wait until they end"
        )
    lines.append(f"  first admin token: motcua token create --role admin --data-dir {data}")
    return "\n".join(lines)


async def _run_workers(args: argparse.Namespace, settings: Settings, bootstrap: str) -> None:
    """The second process of `motcua up`: its services replay, like the first's, what the
    embedded broker may have lost, and serve their routes on a loopback port of their own."""
    from services.core.runtime.host import build_app
    from services.core.runtime.replay import GroupOffsets, Replay

    replay = Replay(_readers(), GroupOffsets(bootstrap))
    try:
        app = build_app(_services(settings, args.services, bootstrap, replay))
        await _Server(_uvicorn_config(app, args.host, args.port)).serve()
    finally:
        await replay.offsets.close()


def _service_classes() -> dict[str, Any]:
    from services.intake.app import IntakeService
    from services.notifier.app import NotifierService
    from services.tracker.app import TrackerService

    return {"intake": IntakeService, "tracker": TrackerService, "notifier": NotifierService}


def _readers() -> dict[str, set[str]]:
    """Topic → the consumer groups that read it, from the services' declarations."""
    readers: dict[str, set[str]] = {}
    for cls in _service_classes().values():
        for topic in cls.consumes:
            readers.setdefault(topic, set()).add(cls.consumer_group)
    return readers


def _services(
    settings: Settings, names: Sequence[str], bootstrap: str, replay: Any = None
) -> list[Any]:
    classes = _service_classes()
    return [
        classes[name](settings, kafka_bootstrap=bootstrap, replay=replay)
        for name in SERVICES
        if name in names
    ]


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, which ends the process with
    status -15; a stop that was asked for is a clean exit, so we keep the handlers and
    drop the re-raise (the broker and the databases are closed by then)."""

    announce: str | None = None  # printed to stdout once the server answers

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            heap.settle()  # startup's objects out of the collector's full passes
        if self.started and self.announce:
            print(self.announce, flush=True)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _uvicorn_config(app: object, host: str, port: int) -> uvicorn.Config:
    from services.core.runtime.http_protocol import JsonErrorsHttpProtocol  # 400s as JSON

    # proxy_headers off: uvicorn would otherwise take X-Forwarded-For from any peer on
    # loopback (its default FORWARDED_ALLOW_IPS) as the client address, before our own
    # MOTCUA_TRUSTED_PROXIES rule (core.runtime.proxies) is asked.
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        http=JsonErrorsHttpProtocol,
    )


def _serve(app: object, host: str, port: int) -> None:
    _Server(_uvicorn_config(app, host, port)).run()


if __name__ == "__main__":
    raise SystemExit(main())
