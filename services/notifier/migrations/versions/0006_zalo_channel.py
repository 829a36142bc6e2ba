"""Zalo first, the SMS when Zalo cannot: each notice's channel, its ZNS, the ZNS's id

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ZALO_WAIT = "status = 'accepted' AND channel = 'zalo'"


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: SQLite's batch copies the table and would lose the
    # trigger that numbers the notices (0004).
    channel = sa.Column("channel", sa.String(length=8), nullable=False, server_default="sms")
    op.add_column("notifier_notices", channel)
    op.add_column("notifier_notices", sa.Column("zns", sa.JSON(), nullable=True))
    op.add_column("notifier_notices", sa.Column("zns_message_id", sa.String(100), nullable=True))
    op.create_index("ix_notifier_notices_zns_message_id", "notifier_notices", ["zns_message_id"])
    op.create_index(
        "ix_notifier_notices_zalo_wait",
        "notifier_notices",
        ["next_attempt_at"],
        postgresql_where=sa.text(ZALO_WAIT),
        sqlite_where=sa.text(ZALO_WAIT),
    )


def downgrade() -> None:
    op.drop_index("ix_notifier_notices_zalo_wait", table_name="notifier_notices")
    op.drop_index("ix_notifier_notices_zns_message_id", table_name="notifier_notices")
    for column in ("zns_message_id", "zns", "channel"):
        op.drop_column("notifier_notices", column)
