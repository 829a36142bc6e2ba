"""The intake's own tables. No other service reads them."""

from __future__ import annotations

import sqlalchemy as sa

from services.core.runtime.database import UtcDateTime
from services.core.runtime.outbox import outbox_table
from services.core.runtime.replay import checkpoint_table

metadata = sa.MetaData()
_BIGINT = sa.BigInteger().with_variant(sa.Integer, "sqlite")
_TS = sa.DateTime(timezone=True)

agencies = sa.Table(
    "intake_agencies",
    metadata,
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("office_schedule", sa.JSON, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

procedures = sa.Table(
    "intake_procedures",
    metadata,
    sa.Column("code", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("agency_code", sa.String(32), sa.ForeignKey("intake_agencies.code"), nullable=False),
    sa.Column("time_limit_value", sa.Integer, nullable=False),
    sa.Column("time_limit_unit", sa.String(20), nullable=False),
    sa.Column("cutoff_time", sa.String(5), nullable=True),
    sa.Column("postal_return", sa.Boolean, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

# Codes are unique whatever their case (repository.code_in_any_case).
sa.Index("uq_intake_agencies_code_any_case", sa.func.lower(agencies.c.code), unique=True)
sa.Index("uq_intake_procedures_code_any_case", sa.func.lower(procedures.c.code), unique=True)

supervisors = sa.Table(
    "intake_supervisors",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("agency_code", sa.String(32), sa.ForeignKey("intake_agencies.code"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(20), nullable=False),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Index("ix_intake_supervisors_agency", "agency_code"),
)

calendar_overrides = sa.Table(
    "intake_calendar_overrides",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("note", sa.String(300), nullable=False, server_default=""),
    sa.Column("updated_at", _TS, nullable=False),
)

dossiers = sa.Table(
    "intake_dossiers",
    metadata,
    sa.Column("seq", _BIGINT, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("handling_agency", sa.String(32), nullable=True),
    sa.Column("procedure_code", sa.String(64), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    # None once the applicant's data is erased (docs/privacy.md): the public lookup then
    # matches no phone.
    sa.Column("applicant_phone", sa.String(20), nullable=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=True),
    sa.Column("flag", sa.String(16), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    # When it was returned, rejected or withdrawn (Dossier.closed_at), and when the applicant's
    # personal data was erased, a retention after that (services/intake/privacy.py).
    sa.Column("closed_at", UtcDateTime(), nullable=True),
    sa.Column("personal_data_erased_at", UtcDateTime(), nullable=True),
    sa.Column("supplement_requests", sa.Integer, nullable=False, server_default="0"),
    # The tracker's deadline version and the rank of its last applied event within it
    # (changed < due_soon < overdue < closed): flags only move forward, so a redelivered
    # or late event cannot bring back a flag the tracker has since replaced.
    sa.Column("deadline_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deadline_rank", sa.SmallInteger, nullable=False, server_default="0"),
    # The postal return (bưu gửi) as the notifier last reported it: its tracking code, and
    # its status with the operator's time, so a late or redelivered status never moves it back.
    sa.Column("postal_tracking_code", sa.String(40), nullable=True),
    sa.Column("postal_status", sa.String(20), nullable=True),
    sa.Column("postal_status_at", UtcDateTime(), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
    sa.Index("ix_intake_dossiers_agency_seq", "agency_code", "seq"),
    sa.Index("ix_intake_dossiers_handling_seq", "handling_agency", "seq"),
    sa.Index("ix_intake_dossiers_status_seq", "status", "seq"),
    sa.Index("ix_intake_dossiers_flag_seq", "flag", "seq"),
    sa.Index("ix_intake_dossiers_agency_received", "agency_code", "received_at"),
    sa.Index("ix_intake_dossiers_agency_finished", "agency_code", "finished_at"),
    # The erasure reads only the closed dossiers whose data is still there.
    sa.Index(
        "ix_intake_dossiers_to_erase",
        "closed_at",
        postgresql_where=sa.text("closed_at IS NOT NULL AND personal_data_erased_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NOT NULL AND personal_data_erased_at IS NULL"),
    ),
)

code_counters = sa.Table(
    "intake_code_counters",
    metadata,
    sa.Column("prefix", sa.String(48), primary_key=True),
    sa.Column("last", sa.Integer, nullable=False),
)

idempotency_keys = sa.Table(
    "intake_idempotency_keys",
    metadata,
    sa.Column("principal_id", sa.String(36), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
)

tokens = sa.Table(
    "intake_tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=True),
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("revoked_at", _TS, nullable=True),
)

# Đánh giá mức độ hài lòng (SIPAS): one answer per dossier (the primary key), given on the
# rating page a returned dossier's SMS links to (services.intake.satisfaction). Each answer
# is 1 to 5. Nothing personal but the comment, free text the citizen typed: it is erased
# with the applicant's data (services.intake.privacy).
ratings = sa.Table(
    "intake_ratings",
    metadata,
    sa.Column("dossier_id", sa.String(36), primary_key=True),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("procedure_code", sa.String(64), nullable=False),
    sa.Column("answered_at", UtcDateTime(), nullable=False),
    sa.Column("ease", sa.SmallInteger, nullable=False),
    sa.Column("attitude", sa.SmallInteger, nullable=False),
    sa.Column("on_time", sa.SmallInteger, nullable=False),
    sa.Column("overall", sa.SmallInteger, nullable=False),
    sa.Column("comment", sa.String(500), nullable=True),
    *(
        sa.CheckConstraint(f"{name} BETWEEN 1 AND 5", name=f"ck_intake_ratings_{name}")
        for name in ("ease", "attitude", "on_time", "overall")
    ),
    sa.Index("ix_intake_ratings_agency_answered", "agency_code", "answered_at"),
)

outbox = outbox_table(metadata, "intake")
outbox_checkpoint = checkpoint_table(metadata, "intake")
