"""The receipt-to-SMS benchmark (bench/receipt_to_sms.py), run small: intake, tracker and
notifier as processes on PostgreSQL, a fake SMS gateway, dossiers posted at a fixed rate.

Checks that every dossier created was texted once, to the right phone, and nothing else —
never timings. With CI=true a missing PostgreSQL or broker fails the run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bench import common
from bench import receipt_to_sms as bench
from tests.e2e.bench_support import bench_database, check_section_writes, digest

pytestmark = [pytest.mark.postgres, pytest.mark.broker]


async def test_small_run_texts_every_dossier_once(tmp_path: Path) -> None:
    readme = digest(common.README)
    async with bench_database("sms") as url:
        options = bench.Options(
            rates=[20.0], duration=2.0, database_url=url, folder=tmp_path, warm_up=3,
            drain_timeout=60, ceiling_seconds=1.0, ceiling_warm_up=0,
        )  # fmt: skip
        result = await bench.run(options)
        pg = await common.postgres_info(url)

    assert bench.problems(result) == []
    assert result.ceiling is not None and result.ceiling.level.created > 0
    (measured,) = result.rates
    assert len(measured.posted) == 40
    assert not measured.failures()
    assert len(measured.created) == 40
    assert measured.arrived == 40 and measured.missing == 0
    assert measured.duplicates == 0 and measured.strays == 0
    assert all(latency > 0 for latency in measured.latencies.values())
    assert result.notices["accepted"] == 40 + options.warm_up
    assert result.exit_codes == [0, 0, 0]

    text = bench.section(result, "python -m bench.receipt_to_sms", date.today(),
                         common.machine(), pg)  # fmt: skip
    assert "| 20/s | 40 | 40 | 0 |" in text
    assert f"Ceiling {result.ceiling.rate:,.0f} req/s in this run" in text
    assert "Carried at 20/s offered: " in text and "- **Ceiling.**" in text
    check_section_writes(tmp_path, bench.NAME, bench.TITLE, text, bench.ROW)
    assert digest(common.README) == readme
