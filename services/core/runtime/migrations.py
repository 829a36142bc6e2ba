"""Alembic, driven from code: one migration folder and one version table per service."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from services.core.runtime.database import create_engine
from services.core.runtime.settings import SERVICES, ServiceName

SERVICES_DIR = Path(__file__).resolve().parents[2]


def alembic_config(service: ServiceName, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    config.attributes["service"] = service
    return config


def migrated_services() -> list[ServiceName]:
    """The services that have Alembic migrations (the others own no tables yet)."""
    return [s for s in SERVICES if (SERVICES_DIR / s / "migrations" / "env.py").exists()]


def version_table(service: ServiceName) -> str:
    return f"alembic_version_{service}"


def upgrade(service: ServiceName, url: str, revision: str = "head") -> None:
    """Bring the service's tables to `revision` (blocking; call it from a thread in async code)."""
    create_engine(url)  # makes the SQLite folder exist before Alembic connects
    command.upgrade(alembic_config(service, url), revision)


async def upgrade_async(service: ServiceName, url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, service, url, revision)
