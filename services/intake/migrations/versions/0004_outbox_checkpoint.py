"""the outbox's consumed checkpoint, for replay after the embedded broker forgot

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


def upgrade() -> None:
    op.create_table(
        "intake_outbox_checkpoint",
        sa.Column("outbox", sa.String(length=64), nullable=False),
        sa.Column(
            "consumed_through",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("outbox"),
    )


def downgrade() -> None:
    op.drop_table("intake_outbox_checkpoint")
