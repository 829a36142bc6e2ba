"""postal return shown on the dossier: tracking code and last status

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

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("intake_dossiers") as batch:
        batch.add_column(sa.Column("postal_tracking_code", sa.String(40), nullable=True))
        batch.add_column(sa.Column("postal_status", sa.String(20), nullable=True))
        batch.add_column(sa.Column("postal_status_at", _TS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("intake_dossiers") as batch:
        batch.drop_column("postal_status_at")
        batch.drop_column("postal_status")
        batch.drop_column("postal_tracking_code")
