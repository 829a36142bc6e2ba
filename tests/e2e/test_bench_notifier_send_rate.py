"""The notifier send-rate benchmark (bench/notifier_send_rate.py), run small: stored notices
on PostgreSQL and dossier events on SQLite, `motcua notifier` as a process, a fake gateway.

Checks that every preloaded notice reached the gateway once and ended accepted — never
timings. With CI=true a missing PostgreSQL or broker fails the run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bench import common
from bench import notifier_send_rate as bench
from tests.e2e.bench_support import bench_database, check_section_writes, digest

pytestmark = [pytest.mark.postgres, pytest.mark.broker]


async def test_small_run_sends_every_notice_once(tmp_path: Path) -> None:
    readme = digest(common.README)
    cases = [bench.Case("postgres", "queued", 0, 30), bench.Case("sqlite", "events", 0, 20)]
    async with bench_database("notifier") as url:
        options = bench.Options(
            cases, url, tmp_path, drain_timeout=60, ceiling_seconds=1.0, ceiling_warm_up=0
        )
        result = await bench.run(options)
        pg = await common.postgres_info(url)

    assert bench.problems(result) == []
    assert result.ceiling is not None and result.ceiling.level.created > 0
    for case, measured in zip(cases, result.cases, strict=True):
        assert measured.preloaded == case.notices
        assert measured.sent == case.notices and measured.duplicates == 0
        assert {a.to for a in measured.arrivals} == {
            common.e164_of(serial) for serial in range(1, case.notices + 1)
        }
        assert measured.statuses == {"accepted": case.notices}
        assert measured.exit_code == 0

    text = bench.section(result, "python -m bench.notifier_send_rate", date.today(),
                         common.machine(), pg)  # fmt: skip
    assert "| PostgreSQL | 30 notices |" in text and "| SQLite | 20 events |" in text
    assert f"Ceiling {result.ceiling.rate:,.0f} req/s in this run" in text
    assert "of the ceiling" in text and "- **Ceiling.**" in text
    check_section_writes(tmp_path, bench.NAME, bench.TITLE, text, bench.ROW)
    assert digest(common.README) == readme
