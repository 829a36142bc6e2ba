"""Each service's Alembic migrations build exactly the tables its code declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, create_engine

from services.core.runtime.migrations import migrated_services
from services.intake.adapters.tables import metadata as intake_metadata
from services.notifier.adapters.tables import metadata as notifier_metadata
from services.tracker.adapters.tables import metadata as tracker_metadata

METADATA: dict[str, MetaData] = {
    "intake": intake_metadata,
    "notifier": notifier_metadata,
    "tracker": tracker_metadata,
}


def test_every_service_with_tables_has_migrations() -> None:
    assert set(METADATA) <= set(migrated_services())


# SQLite cannot reflect an index on an expression (the intake's lower(code) indexes), so they
# are left out of the comparison; test_validation checks them on SQLite and PostgreSQL.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
@pytest.mark.parametrize("service", sorted(METADATA))
def test_migrations_match_the_declared_tables(service: str, sqlite_template: Path) -> None:
    engine = create_engine(f"sqlite:///{sqlite_template / f'{service}.db'}")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "include_name": lambda name, type_, _p: (
                        type_ != "table" or bool(name and name.startswith(f"{service}_"))
                    ),
                },
            )
            diff = compare_metadata(context, METADATA[service])
    finally:
        engine.dispose()
    assert diff == []
