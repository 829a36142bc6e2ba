"""The `motcua` command (CONTRACT.md, "Commands")."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import structlog
import uvicorn

from services.core.runtime.clock import system_clock
from services.core.runtime.database import create_engine
from services.core.runtime.logging import configure_logging
from services.core.runtime.migrations import migrated_services, upgrade
from services.core.runtime.settings import SERVICES, Settings

log = structlog.get_logger("motcua")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    if args.data_dir:
        settings = settings.model_copy(update={"data_dir": Path(args.data_dir)})
    configure_logging(settings.log_level, settings.log_format)
    result: int = args.run(args, settings)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="motcua", description=__doc__)
    parser.add_argument("--data-dir", help="data folder (default ./var or MOTCUA_DATA_DIR)")
    sub = parser.add_subparsers(required=True, metavar="command")

    up = sub.add_parser("up", help="all three services in one process (embedded default)")
    _serve_options(up, default_port=8000)
    up.add_argument("--data-dir", help="data folder for SQLite files and the outbox")
    up.set_defaults(run=_up)

    for service in SERVICES:
        one = sub.add_parser(service, help=f"the {service} service alone (for containers)")
        _serve_options(one, default_port=8000)
        one.set_defaults(run=_one_service, service=service)

    db = sub.add_parser("db", help="database tasks").add_subparsers(required=True)
    db_up = db.add_parser("upgrade", help="run every configured service's migrations")
    db_up.set_defaults(run=_db_upgrade)

    token = sub.add_parser("token", help="bearer tokens").add_subparsers(required=True)
    create = token.add_parser("create", help="print a new bearer token")
    create.add_argument("--role", required=True, choices=["clerk", "supervisor", "admin"])
    create.add_argument("--agency", help="agency code (required for clerk and supervisor)")
    create.add_argument("--name", help="who the token is for")
    create.set_defaults(run=_token_create)
    return parser


def _serve_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the network")


def _db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    for service in migrated_services():
        upgrade(service, settings.database_url_for(service))
        log.info("migrated", service=service)
    return 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from services.intake.adapters.tokens import create_token

    if args.role != "admin" and not args.agency:
        print("motcua: a clerk or supervisor token needs --agency CODE", file=sys.stderr)
        return 2
    url = settings.database_url_for("intake")
    upgrade("intake", url)

    async def create() -> str:
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                return await create_token(conn, args.role, args.agency, args.name, system_clock())
        finally:
            await engine.dispose()

    print(asyncio.run(create()))
    return 0


def _one_service(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.kafka_bootstrap:
        print("motcua: set MOTCUA_KAFKA_BOOTSTRAP to run one service alone", file=sys.stderr)
        return 2
    from services.core.runtime.host import build_app

    app = build_app(_services(settings, [args.service], settings.kafka_bootstrap))
    _serve(app, args.host, args.port)
    return 0


def _up(args: argparse.Namespace, settings: Settings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _db_upgrade(args, settings)
    asyncio.run(_run_embedded(args, settings))
    return 0


async def _run_embedded(args: argparse.Namespace, settings: Settings) -> None:
    from services.core.runtime.embedded_broker import EmbeddedBroker
    from services.core.runtime.host import build_app
    from services.core.runtime.kafka import ALL_TOPICS, ensure_topics

    broker: EmbeddedBroker | None = None
    bootstrap = settings.kafka_bootstrap
    if not bootstrap:
        broker = EmbeddedBroker(log_dir=settings.data_dir / "broker")
        await broker.start()
        bootstrap = broker.bootstrap
        log.info("embedded_broker_started", bootstrap=bootstrap)
    if not settings.callback_base_url:  # the gateways call this process back
        public = f"http://{args.host}:{args.port}"
        settings = settings.model_copy(update={"callback_base_url": public})
    try:
        await ensure_topics(bootstrap, ALL_TOPICS, settings.kafka_partitions)
        app = build_app(_services(settings, list(SERVICES), bootstrap))
        server = _Server(_uvicorn_config(app, args.host, args.port))
        await server.serve()
    finally:
        if broker:
            await broker.stop()


def _services(settings: Settings, names: Sequence[str], bootstrap: str) -> list[object]:
    from services.intake.app import IntakeService
    from services.notifier.app import NotifierService
    from services.tracker.app import TrackerService

    services: list[object] = []
    if "intake" in names:
        services.append(IntakeService(settings, kafka_bootstrap=bootstrap))
    if "tracker" in names:
        services.append(TrackerService(settings, kafka_bootstrap=bootstrap))
    if "notifier" in names:
        services.append(NotifierService(settings, kafka_bootstrap=bootstrap))
    return services


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after its graceful shutdown, which ends the process with
    status -15; a stop that was asked for is a clean exit, so we keep the handlers and
    drop the re-raise (the broker and the databases are closed by then)."""

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

    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        http=JsonErrorsHttpProtocol,
    )


def _serve(app: object, host: str, port: int) -> None:
    _Server(_uvicorn_config(app, host, port)).run()


if __name__ == "__main__":
    raise SystemExit(main())
