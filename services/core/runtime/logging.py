"""structlog set-up: JSON lines when not on a TTY, console otherwise; personal data redacted.

Redaction is by key name and by value shape, so a phone or ID number that slips into an
event under an innocent key still never reaches the log.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

PERSONAL_KEYS = frozenset(
    {
        "phone",
        "to",
        "full_name",
        "name",
        "id_number",
        "email",
        "address",
        "return_address",
        "applicant",
        "receiver",
        "street",
        "text",
        "body",
    }
)
_PHONE = r"(?<!\d)(?:\+?84|0)\d{9,10}(?!\d)"
_ID_NUMBER = r"(?<!\d)\d{12}(?!\d)"
_EMAIL = r"[\w.+-]+@[\w-]+\.[\w.-]+"
# A UUID is matched first and kept: its last group may be twelve decimal digits, or start
# with 0 and nine digits, which would otherwise pass for a CCCD or a phone number.
_UUID = r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
_SHAPES = re.compile(f"(?P<uuid>{_UUID})|{_EMAIL}|{_ID_NUMBER}|{_PHONE}")
# Every shape but a UUID needs a digit or an "@"; a UUID is kept.
_MAY_HOLD_A_SHAPE = re.compile(r"[\d@]")
_JUST_A_UUID = re.compile(_UUID)
REDACTED = "[redacted]"
# Set by the processors before redaction, from our own configuration: never personal data.
_OWN_KEYS = frozenset({"timestamp", "level", "logger"})


def _keep_uuid(match: re.Match[str]) -> str:
    return match.group() if match.group("uuid") else REDACTED


def redact_text(value: str) -> str:
    # Most values are ids, codes and event names: nothing to redact. A value without a digit
    # or an "@", or that is one UUID, is answered without the scan below, which tried the
    # four shapes at every character: 13 of the 31 µs a log line cost (a service writes a
    # few lines a dossier: bench/README.md). The same answer (tests/unit/test_log_redaction).
    if _MAY_HOLD_A_SHAPE.search(value) is None or _JUST_A_UUID.fullmatch(value):
        return value
    return redact_shapes(value)


def redact_shapes(value: str) -> str:
    """Every phone, CCCD and e-mail in `value` replaced, its UUIDs kept."""
    # Only looking costs a third of replacing, which calls back for every UUID.
    for match in _SHAPES.finditer(value):
        if match.group("uuid") is None:
            return _SHAPES.sub(_keep_uuid, value)
    return value


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {k: REDACTED if k in PERSONAL_KEYS else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(repr(value))


def redact_personal_data(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """By key at any depth, and by shape (phone, CCCD, e-mail) in every other value."""
    for key, value in list(event_dict.items()):
        if key not in _OWN_KEYS:
            event_dict[key] = REDACTED if key in PERSONAL_KEYS else _redact(value)
    return event_dict


class _NamedWriteLogger(structlog.WriteLogger):
    """structlog's plain writer, with the name it was asked for (the `logger` key)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """motcua's own lines straight from structlog to the stream; the libraries' (stdlib
    logging: uvicorn, alembic…) through a handler, in the same shape and redacted alike.

    Not structlog over stdlib logging for our own lines: that path (LoggerFactory,
    ProcessorFormatter, a LogRecord each) cost about twice as much a line, and a dossier
    makes five lines across the services (bench/README.md)."""
    out = stream if stream is not None else sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    threshold = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, redact_personal_data, renderer],
        logger_factory=lambda *args: _NamedWriteLogger(out, str(args[0]) if args else ""),
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_personal_data,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty below WARNING, and some of them with personal data: aiosqlite's DEBUG lines carry
    # SQL parameters (names, addresses), access logs and httpx's INFO lines carry query strings.
    for noisy in (
        "aiokafka", "uvicorn.access", "faststream", "apscheduler",
        "aiosqlite", "asyncpg", "sqlalchemy", "httpx", "httpcore",
    ):  # fmt: skip
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
