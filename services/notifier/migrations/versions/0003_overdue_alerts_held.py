"""flags wait in notifier_alerts until they are true of the dossier as known; cards know
the agency holding the dossier

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifier_alerts",
        sa.Column("dossier_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("dossier_code", sa.String(length=64), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("step_number", sa.Integer(), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("overdue_minutes", sa.Integer(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settle_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("dossier_id", "kind"),
    )
    op.add_column(
        "notifier_dossiers", sa.Column("handling_agency", sa.String(length=32), nullable=True)
    )
    op.create_index(
        "ix_notifier_alerts_settle_until", "notifier_alerts", ["settle_until"], unique=False
    )


def downgrade() -> None:
    op.drop_column("notifier_dossiers", "handling_agency")
    op.drop_index("ix_notifier_alerts_settle_until", table_name="notifier_alerts")
    op.drop_table("notifier_alerts")
