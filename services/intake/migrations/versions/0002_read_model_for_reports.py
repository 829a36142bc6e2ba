"""read model columns for flags and reports

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("intake_dossiers") as batch:
        batch.add_column(sa.Column("finished_at", _TS, nullable=True))
        batch.add_column(
            sa.Column("supplement_requests", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("deadline_version", sa.Integer, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("deadline_rank", sa.SmallInteger, nullable=False, server_default="0")
        )
        batch.create_index("ix_intake_dossiers_agency_received", ["agency_code", "received_at"])
        batch.create_index("ix_intake_dossiers_agency_finished", ["agency_code", "finished_at"])


def downgrade() -> None:
    with op.batch_alter_table("intake_dossiers") as batch:
        batch.drop_index("ix_intake_dossiers_agency_finished")
        batch.drop_index("ix_intake_dossiers_agency_received")
        batch.drop_column("deadline_rank")
        batch.drop_column("deadline_version")
        batch.drop_column("supplement_requests")
        batch.drop_column("finished_at")
