"""UtcDateTime stores an instant as UTC text on SQLite in one step, the same text as
SQLAlchemy's own SQLite DATETIME after converting to UTC (rows written before compare and
read back alike), and hands PostgreSQL an aware UTC datetime."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from services.core.runtime.database import UtcDateTime

HANOI = timezone(timedelta(hours=7))
INSTANTS = [
    datetime(2026, 12, 3, 10, 0, 0, 123_456, tzinfo=UTC),
    datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 12, 4, 1, 30, 5, 7, tzinfo=HANOI),  # the day before, in UTC
    datetime(1, 1, 1, 7, 0, tzinfo=HANOI),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]


def _sqlite_text(value: datetime) -> str:
    dialect = sqlite.dialect()
    process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process(value)


@pytest.mark.parametrize("value", INSTANTS, ids=str)
def test_the_sqlite_text_is_sqlalchemys_own_for_the_utc_time(value: datetime) -> None:
    dialect = sqlite.dialect()
    sqlalchemys = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert _sqlite_text(value) == sqlalchemys(value.astimezone(UTC).replace(tzinfo=None))


def test_a_naive_time_is_refused_and_none_stays_none() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _sqlite_text(datetime(2026, 12, 3, 10, 0))
    dialect = sqlite.dialect()
    assert UtcDateTime().dialect_impl(dialect).bind_processor(dialect)(None) is None


def test_postgresql_gets_an_aware_utc_datetime() -> None:
    dialect = postgresql.asyncpg.dialect()
    value = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)(INSTANTS[2])
    assert value == INSTANTS[2] and value.tzinfo is UTC


def test_stored_instants_compare_and_read_back_as_instants(tmp_path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 't.db'}")
    table = sa.Table("t", sa.MetaData(), sa.Column("at", UtcDateTime()))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"at": v} for v in INSTANTS])
        back = conn.execute(sa.select(table.c.at).order_by(table.c.at)).scalars().all()
        earlier = conn.execute(
            sa.select(sa.func.count()).where(table.c.at <= INSTANTS[0])
        ).scalar_one()
    assert back == sorted(INSTANTS)
    assert all(v.tzinfo is UTC for v in back)
    # 01:30 in Hanoi on the 4th is 18:30 UTC on the 3rd: later than 10:00 UTC
    assert earlier == 3  # year 1, 10:00:00 and 10:00:00.123456
