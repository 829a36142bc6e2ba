"""agency and procedure codes unique whatever their case

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "uq_intake_agencies_code_any_case",
        "intake_agencies",
        [sa.text("lower(code)")],
        unique=True,
    )
    op.create_index(
        "uq_intake_procedures_code_any_case",
        "intake_procedures",
        [sa.text("lower(code)")],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_intake_procedures_code_any_case", table_name="intake_procedures")
    op.drop_index("uq_intake_agencies_code_any_case", table_name="intake_agencies")
