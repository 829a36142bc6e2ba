"""the failed notices of an agency by time, for the dashboard (partial index)

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FAILED = sa.text("status = 'failed'")


def upgrade() -> None:
    # Partial: only a notice that failed for good is in it, so sending and delivering
    # (the hot path) never write to it.
    op.create_index(
        "ix_notifier_notices_failed",
        "notifier_notices",
        ["agency_code", "updated_at"],
        postgresql_where=FAILED,
        sqlite_where=FAILED,
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_notices_failed", table_name="notifier_notices")
