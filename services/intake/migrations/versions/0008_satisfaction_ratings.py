"""the citizens' satisfaction ratings (SIPAS), one per returned dossier

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUESTIONS = ("ease", "attitude", "on_time", "overall")


def upgrade() -> None:
    op.create_table(
        "intake_ratings",
        sa.Column("dossier_id", sa.String(length=36), nullable=False),
        sa.Column("agency_code", sa.String(length=32), nullable=False),
        sa.Column("procedure_code", sa.String(length=64), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(name, sa.SmallInteger(), nullable=False) for name in QUESTIONS),
        sa.Column("comment", sa.String(length=500), nullable=True),
        *(
            sa.CheckConstraint(f"{name} BETWEEN 1 AND 5", name=f"ck_intake_ratings_{name}")
            for name in QUESTIONS
        ),
        sa.PrimaryKeyConstraint("dossier_id"),
    )
    op.create_index(
        "ix_intake_ratings_agency_answered", "intake_ratings", ["agency_code", "answered_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_intake_ratings_agency_answered", table_name="intake_ratings")
    op.drop_table("intake_ratings")
