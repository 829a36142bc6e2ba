"""The notifier's own tables. No other service reads them.

Personal data lives here (phones, names, addresses: the notifier must reach people), and
nowhere in its logs.
"""

from __future__ import annotations

import sqlalchemy as sa

from services.core.runtime.database import UtcDateTime
from services.core.runtime.outbox import outbox_table
from services.core.runtime.replay import checkpoint_table

metadata = sa.MetaData()
NOTICE_STATUSES = ("held", "pending", "sending", "accepted", "delivered", "failed", "skipped")
ORDER_STATUSES = ("pending", "sending", "placed", "failed")
BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

dossiers = sa.Table(
    "notifier_dossiers",
    metadata,
    sa.Column("dossier_id", sa.String(36), primary_key=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("procedure_name", sa.String(300), nullable=False),
    sa.Column("applicant_name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),
    sa.Column("return_method", sa.String(16), nullable=False),
    sa.Column("return_address", sa.JSON, nullable=True),
    sa.Column("status", sa.String(24), nullable=False),
    # The agency holding the dossier now (another after an inter-agency transfer).
    sa.Column("handling_agency", sa.String(32), nullable=True),
    # The tracker's word, for the daily digest (see core.domain.deadline_projection).
    sa.Column("due_at", UtcDateTime(), nullable=True),
    sa.Column("flag", sa.String(16), nullable=True),
    sa.Column("deadline_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("deadline_rank", sa.Integer, nullable=False, server_default="0"),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index(
        "ix_notifier_dossiers_flagged",
        "agency_code",
        "flag",
        postgresql_where=sa.text("flag IS NOT NULL"),
        sqlite_where=sa.text("flag IS NOT NULL"),
    ),
)

supervisors = sa.Table(
    "notifier_supervisors",
    metadata,
    sa.Column("agency_code", sa.String(32), primary_key=True),
    sa.Column("supervisor_id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("phone", sa.String(32), nullable=False),
)

# Each agency's name (tên cơ quan), from motcua.directory.v1, for texts that name an agency.
agencies = sa.Table(
    "notifier_agencies",
    metadata,
    sa.Column("agency_code", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
)

notices = sa.Table(
    "notifier_notices",
    metadata,
    # uuid5 of (source_key, recipient, template): also the gateway's request_id.
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("source_key", sa.String(120), nullable=False),
    sa.Column("recipient", sa.String(32), nullable=False),
    sa.Column("template", sa.String(40), nullable=False),
    sa.Column("audience", sa.String(16), nullable=False),
    sa.Column("dossier_id", sa.String(36), nullable=True),
    sa.Column("dossier_code", sa.String(64), nullable=True),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("unicode", sa.Boolean, nullable=False),
    sa.Column("segments", sa.Integer, nullable=False),
    # held → pending → sending → accepted → delivered | failed; skipped, failed are final
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("first_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("gateway", sa.String(40), nullable=True),
    sa.Column("gateway_index", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message_id", sa.String(100), nullable=True),
    sa.Column("error", sa.String(200), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # The order notices were decided in, set by the database (a sequence on PostgreSQL, the
    # rowid by a trigger on SQLite: migration 0004): the order of the facts they tell, which
    # created_at cannot give (one transaction decides several at the same instant).
    sa.Column("seq", BIG_ID, nullable=True),
    # Zalo first, the SMS when Zalo cannot (notifier.domain.channels; migration 0006): the
    # channel the notice is on, what its ZNS carries (template and parameters; none: SMS
    # only), and the provider's id of the ZNS, apart from the SMS's, so that a report about
    # the ZNS after the SMS was chosen is still recognised.
    sa.Column("channel", sa.String(8), nullable=False, server_default="sms"),
    sa.Column("zns", sa.JSON, nullable=True),
    sa.Column("zns_message_id", sa.String(100), nullable=True),
    sa.UniqueConstraint("source_key", "recipient", "template", name="uq_notifier_notices_identity"),
    # The dispatcher reads only what is waiting to go out, in the order it claims it
    # (migration 0008): a claim reads the index from its start and stops at its batch.
    sa.Index(
        "ix_notifier_notices_due",
        "next_attempt_at",
        "seq",
        postgresql_where=sa.text("status IN ('held', 'pending', 'sending')"),
        sqlite_where=sa.text("status IN ('held', 'pending', 'sending')"),
    ),
    # A notice waits for those before it to the same person about the same dossier.
    sa.Index(
        "ix_notifier_notices_in_line",
        "dossier_id",
        "recipient",
        "seq",
        postgresql_where=sa.text("status IN ('held', 'pending', 'sending')"),
        sqlite_where=sa.text("status IN ('held', 'pending', 'sending')"),
    ),
    sa.Index("ix_notifier_notices_message_id", "message_id"),
    sa.Index("ix_notifier_notices_zns_message_id", "zns_message_id"),
    # A ZNS accepted waits for its delivery report until next_attempt_at.
    sa.Index(
        "ix_notifier_notices_zalo_wait",
        "next_attempt_at",
        postgresql_where=sa.text("status = 'accepted' AND channel = 'zalo'"),
        sqlite_where=sa.text("status = 'accepted' AND channel = 'zalo'"),
    ),
    sa.Index("ix_notifier_notices_dossier", "dossier_id"),
    # The dashboard's failed notices of an agency in a period (adapters.sent); only failed
    # ones are in it, so sending never writes to it.
    sa.Index(
        "ix_notifier_notices_failed",
        "agency_code",
        "updated_at",
        postgresql_where=sa.text("status = 'failed'"),
        sqlite_where=sa.text("status = 'failed'"),
    ),
)

# Flags not told yet: a dossier overdue (kind "overdue"), an inter-agency step overdue (kind
# "step_overdue", with the step and the late agency, whose supervisors are told). An alert
# must be true of the dossier as known when it is sent: a flag waits here until its dossier
# is known (a deadline event may come before the dossier's receipt) and has had no news for a
# while (`settle_until`: history being imported arrives event after event, and a scan between
# them sees a past deadline that a later event answers); a later deadline event that moves
# past it takes it away (notifier.domain.decisions.PendingAlert, handlers.decide_alerts).
alerts = sa.Table(
    "notifier_alerts",
    metadata,
    sa.Column("dossier_id", sa.String(36), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("dossier_code", sa.String(64), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False),  # whose supervisors are told
    sa.Column("version", sa.Integer, nullable=False),  # the deadline version flagged
    sa.Column("step_number", sa.Integer, nullable=True),
    sa.Column("due_at", UtcDateTime(), nullable=False),
    sa.Column("overdue_minutes", sa.Integer, nullable=False),
    sa.Column("raised_at", UtcDateTime(), nullable=False),
    sa.Column("settle_until", UtcDateTime(), nullable=False),
    sa.Index("ix_notifier_alerts_settle_until", "settle_until"),
)

notice_history = sa.Table(
    "notifier_notice_history",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("notice_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("detail", sa.String(200), nullable=True),
    sa.Index("ix_notifier_notice_history_notice", "notice_id", "id"),
)

# A delivery receipt that came before the gateway's answer was committed.
early_receipts = sa.Table(
    "notifier_early_receipts",
    metadata,
    sa.Column("message_id", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.String(200), nullable=True),
    sa.Column("received_at", UtcDateTime(), nullable=False),
)

postal_orders = sa.Table(
    "notifier_postal_orders",
    metadata,
    sa.Column("dossier_id", sa.String(36), primary_key=True),
    sa.Column("reference", sa.String(64), nullable=False, unique=True),
    sa.Column("receiver", sa.JSON, nullable=False),  # name, phone, address
    sa.Column("content", sa.String(300), nullable=False),
    # pending → sending → placed | failed; then the operator's status
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("carrier_status", sa.String(16), nullable=True),
    sa.Column("tracking_code", sa.String(40), nullable=True, unique=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("first_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("error", sa.String(200), nullable=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index(
        "ix_notifier_postal_orders_due",
        "next_attempt_at",
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
        sqlite_where=sa.text("status IN ('pending', 'sending')"),
    ),
)

postal_history = sa.Table(
    "notifier_postal_history",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("dossier_id", sa.String(36), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("detail", sa.String(200), nullable=True),
    sa.Index("ix_notifier_postal_history_dossier", "dossier_id", "id"),
)

# The calendar's override table as last announced on motcua.calendar.v1 (one row).
calendar = sa.Table(
    "notifier_calendar",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("overrides", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

outbox = outbox_table(metadata, "notifier")
outbox_checkpoint = checkpoint_table(metadata, "notifier")
