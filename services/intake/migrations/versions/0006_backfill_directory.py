"""publish every agency's directory entry once: supervisors registered before
motcua.directory.v1 existed (or whose list was never published) reach the notifier, and so
does every agency's name

Revision ID: 0006
Revises: 0005
"""

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Why a data migration and not a pass at each start: Alembic runs it once per database, in
# one transaction with its version stamp, so it is idempotent without a content-derived id
# (which would not do at start either: published outbox rows are purged, and the same id
# would then be published again at every start). The rows go through the outbox like every
# other event, so the relay publishes them in order with what follows for the same agency.
# Every agency is published, with or without supervisors: the record replaces the notifier's
# copy, so publishing a list it already holds changes nothing, and it learns every name.
#
# The envelope is written out here as the contract stood when this ran (version 1 of
# schemas.events.DirectoryEnvelope), not built from the current models: a migration must do
# the same thing whenever it runs. tests/integration/test_directory.py checks it parses.

TOPIC = "motcua.directory.v1"
TYPE = "directory.supervisors_changed"

agencies = sa.table("intake_agencies", sa.column("code", sa.String), sa.column("name", sa.String))
supervisors = sa.table(
    "intake_supervisors",
    sa.column("id", sa.String),
    sa.column("agency_code", sa.String),
    sa.column("name", sa.String),
    sa.column("phone", sa.String),
    sa.column("email", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
outbox = sa.table(
    "intake_outbox",
    sa.column("event_id", sa.String),
    sa.column("topic", sa.String),
    sa.column("key", sa.String),
    sa.column("value", sa.Text),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    conn = op.get_bind()
    now = datetime.now(UTC)
    people: dict[str, list[dict[str, str | None]]] = {}
    s = supervisors.c
    for r in conn.execute(
        sa.select(s.id, s.agency_code, s.name, s.phone, s.email).order_by(
            s.agency_code, s.created_at, s.id
        )
    ):
        entry = {"id": r.id, "name": r.name, "phone": r.phone, "email": r.email}
        people.setdefault(r.agency_code, []).append(entry)
    rows = []
    for agency in conn.execute(
        sa.select(agencies.c.code, agencies.c.name).order_by(agencies.c.code)
    ):
        event_id = str(uuid.uuid4())  # runs once (see above): a random id is enough
        envelope = {
            "event_id": event_id,
            "type": TYPE,
            "version": 1,
            "occurred_at": now.isoformat(),
            "payload": {
                "agency_code": agency.code,
                "agency_name": agency.name,
                "supervisors": people.get(agency.code, []),
            },
        }
        value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"))
        rows.append(
            {"event_id": event_id, "topic": TOPIC, "key": agency.code, "value": value,
             "created_at": now}
        )  # fmt: skip
    if rows:
        conn.execute(outbox.insert(), rows)


def downgrade() -> None:
    # Nothing to undo: what was published stays published, and the entries were true.
    pass
