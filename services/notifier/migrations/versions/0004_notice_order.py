"""notifier_notices.seq: the order notices were decided in, so one dossier's go out in order

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status IN ('held', 'pending', 'sending')"


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.add_column("notifier_notices", sa.Column("seq", big, nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE notifier_notices_seq OWNED BY notifier_notices.seq")
        # The notices already decided keep the order they were decided in.
        op.execute(
            "UPDATE notifier_notices AS n SET seq = o.seq FROM (SELECT id, nextval("
            "'notifier_notices_seq') AS seq FROM (SELECT id FROM notifier_notices "
            "ORDER BY created_at, id) AS ordered) AS o WHERE n.id = o.id"
        )
        op.execute(
            "ALTER TABLE notifier_notices ALTER COLUMN seq "
            "SET DEFAULT nextval('notifier_notices_seq')"
        )
    else:
        # SQLite has no sequences: a row's rowid is one more than the largest, i.e. the
        # order of insertion among the rows present, and a trigger copies it.
        op.execute("UPDATE notifier_notices SET seq = rowid")
        op.execute(
            "CREATE TRIGGER notifier_notices_seq AFTER INSERT ON notifier_notices "
            "WHEN NEW.seq IS NULL BEGIN "
            "UPDATE notifier_notices SET seq = NEW.rowid WHERE rowid = NEW.rowid; END"
        )
    op.create_index(
        "ix_notifier_notices_in_line",
        "notifier_notices",
        ["dossier_id", "recipient", "seq"],
        unique=False,
        postgresql_where=sa.text(WAITING),
        sqlite_where=sa.text(WAITING),
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_notices_in_line", table_name="notifier_notices")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE notifier_notices ALTER COLUMN seq DROP DEFAULT")
        op.execute("DROP SEQUENCE notifier_notices_seq")
    else:
        op.execute("DROP TRIGGER notifier_notices_seq")
    op.drop_column("notifier_notices", "seq")
