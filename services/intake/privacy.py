"""Personal data kept no longer than needed (Decree 13/2023/NĐ-CP; docs/privacy.md).

The intake owns dossiers, so it decides: a housekeeping job erases the applicant's data from
the dossiers closed more than the retention ago, and, in the same transaction, queues
`dossier.personal_data_erased` for each, so the services holding a copy erase theirs, and
forgets the comment of its satisfaction rating. What
is erased is the domain's rule (`Dossier.erase_personal_data`); this module only finds the
dossiers and saves them.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.adapters import ratings
from services.intake.adapters import repository as repo
from services.intake.adapters import tables as t

# A transaction per batch: a backlog (the first round after an upgrade, say) holds no lock
# for long, and each batch's events leave as soon as it commits.
BATCH_SIZE = 200


async def erase_closed_dossiers(
    engine: AsyncEngine, now: datetime, retention: timedelta, batch_size: int = BATCH_SIZE
) -> int:
    """Erase the personal data of every dossier closed before `now - retention` and not
    erased yet; returns how many were erased. Run again, it erases nothing more: an erased
    dossier is marked (personal_data_erased_at) and no longer selected."""
    cutoff = now - retention
    c = t.dossiers.c
    erased = 0
    while True:
        async with engine.begin() as conn:
            ids = (
                await conn.execute(
                    sa.select(c.id)
                    .where(
                        c.closed_at.is_not(None),
                        c.personal_data_erased_at.is_(None),
                        c.closed_at <= cutoff,
                    )
                    .order_by(c.closed_at, c.id)
                    .limit(batch_size)
                )
            ).scalars()
            selected = list(ids)
            erased_now = []
            # Locked and read again: another replica's round may have erased one meanwhile,
            # and the domain then says there is nothing to do.
            for stored in (await repo.lock_dossiers(conn, selected)).values():
                if stored.dossier.erase_personal_data(now):
                    await repo.save_dossier(
                        conn, stored.dossier, stored.version, now, clock_moved=False
                    )
                    erased_now.append(stored.dossier.id)
            # The citizen's comment on the service may name her: it goes with her data. A
            # rating saved later finds the dossier erased and is refused (satisfaction.find).
            await ratings.erase_comments(conn, erased_now)
            in_batch = len(erased_now)
        erased += in_batch
        if len(selected) < batch_size or not in_batch:
            return erased
