"""when each dossier closed and when its applicant's personal data was erased; the phone may
be erased

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)
FINAL = ("returned", "rejected", "withdrawn")
_PENDING_ERASURE = "closed_at IS NOT NULL AND personal_data_erased_at IS NULL"
BATCH = 1000

dossiers = sa.table(
    "intake_dossiers",
    sa.column("seq", sa.BigInteger),
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("state", sa.JSON),
    sa.column("closed_at", _TS),
)


def upgrade() -> None:
    with op.batch_alter_table("intake_dossiers") as batch:
        batch.add_column(sa.Column("closed_at", _TS, nullable=True))
        batch.add_column(sa.Column("personal_data_erased_at", _TS, nullable=True))
        batch.alter_column("applicant_phone", existing_type=sa.String(20), nullable=True)
    _backfill_closed_at()
    op.create_index(
        "ix_intake_dossiers_to_erase",
        "intake_dossiers",
        ["closed_at"],
        postgresql_where=sa.text(_PENDING_ERASURE),
        sqlite_where=sa.text(_PENDING_ERASURE),
    )


def _backfill_closed_at() -> None:
    """closed_at of the dossiers already closed: the time of their last action, read from the
    state's history as Dossier.closed_at reads it (a final status allows no further action).
    Written here rather than derived at each erasure round, so that the round reads one
    indexed column. In batches by seq, so a large table is not held in memory."""
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    c = dossiers.c
    after = 0
    while True:
        rows = list(
            conn.execute(
                sa.select(c.seq, c.id, c.state)
                .where(c.status.in_(FINAL), c.seq > after)
                .order_by(c.seq)
                .limit(BATCH)
            )
        )
        if not rows:
            return
        updates = []
        for row in rows:
            history = row.state.get("history") or []
            closed = datetime.fromisoformat(history[-1]["at"] if history else row.state["received_at"])
            closed = closed.astimezone(UTC)
            # As services.core.runtime.database.UtcDateTime stores an instant.
            updates.append({"b_id": row.id, "closed_at": closed.replace(tzinfo=None) if sqlite else closed})
        conn.execute(
            dossiers.update().where(c.id == sa.bindparam("b_id")).values(closed_at=sa.bindparam("closed_at")),
            updates,
        )
        after = rows[-1].seq


def downgrade() -> None:
    op.drop_index("ix_intake_dossiers_to_erase", table_name="intake_dossiers")
    # An erased phone cannot come back: the column stays nullable rather than fail.
    with op.batch_alter_table("intake_dossiers") as batch:
        batch.drop_column("personal_data_erased_at")
        batch.drop_column("closed_at")
