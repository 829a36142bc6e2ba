"""The tracker's own tables. No other service reads them."""

from __future__ import annotations

import sqlalchemy as sa

from services.core.runtime.database import UtcDateTime
from services.core.runtime.outbox import outbox_table
from services.core.runtime.replay import checkpoint_table

metadata = sa.MetaData()

dossiers = sa.Table(
    "tracker_dossiers",
    metadata,
    sa.Column("dossier_id", sa.String(36), primary_key=True),
    sa.Column("code", sa.String(64), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("handling_agency", sa.String(32), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("due_at", UtcDateTime(), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("next_check_at", UtcDateTime(), nullable=True),
    sa.Column("finished_at", UtcDateTime(), nullable=True),
    sa.Column("outcome", sa.String(16), nullable=True),
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # The scan reads only the dossiers whose next threshold has come: its cost follows the
    # dossiers crossing a threshold, not the dossiers open.
    sa.Index(
        "ix_tracker_dossiers_next_check_at",
        "next_check_at",
        postgresql_where=sa.text("next_check_at IS NOT NULL"),
        sqlite_where=sa.text("next_check_at IS NOT NULL"),
    ),
    # A calendar change looks only at the dossiers still open.
    sa.Index(
        "ix_tracker_dossiers_open_received",
        "received_at",
        postgresql_where=sa.text("finished_at IS NULL"),
        sqlite_where=sa.text("finished_at IS NULL"),
    ),
)

processed_events = sa.Table(
    "tracker_processed_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("processed_at", UtcDateTime(), nullable=False),
    sa.Index("ix_tracker_processed_events_processed_at", "processed_at"),
)

calendar_overrides = sa.Table(
    "tracker_calendar_overrides",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("note", sa.String(300), nullable=False, server_default=""),
)

outbox = outbox_table(metadata, "tracker")
outbox_checkpoint = checkpoint_table(metadata, "tracker")
