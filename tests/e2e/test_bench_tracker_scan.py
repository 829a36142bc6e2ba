"""The tracker scan benchmark (bench/tracker_scan.py), run small on PostgreSQL.

Checks what the benchmark's figures rest on — every due dossier flagged once, none left due,
the due rows found through the partial index on next_check_at — never timings. It runs in a
database of its own, created and dropped here: the suite truncates the `test` database under
other tests. With CI=true an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bench import common
from bench import tracker_scan as bench
from tests.e2e.bench_support import bench_database, check_section_writes, digest

SIZES = [500, 2000]
DUE = 50

pytestmark = pytest.mark.postgres


async def test_small_run_flags_every_due_dossier_through_the_index(tmp_path: Path) -> None:
    readme = digest(common.README)
    async with bench_database("tracker") as url:
        result = await bench.run(
            url,
            SIZES,
            DUE,
            batch_size=20,  # several batches per scan
            repeats=1,
            counts=bench.TemplateCounts(due_per_window=2, future_per_variant=8),
            ceiling_seconds=1.0,
            ceiling_warm_up=0,
        )
        pg = await common.postgres_info(url, bench.POSTGRES_SETTINGS)
    text = bench.section(result, "python -m bench.tracker_scan", date.today(), common.machine(), pg)

    assert result.ceiling is not None and result.ceiling.level.created > 0
    assert result.ceiling.problems() == []
    assert f"Ceiling {result.ceiling.rate:,.0f} req/s in this run" in text
    assert "flags/s; ceiling" in text and "- **Ceiling.**" in text
    assert sum(result.due_kinds.values()) == DUE
    assert [step.open_dossiers for step in result.steps] == SIZES
    for step in result.steps:
        assert step.flags == step.traced_flags == DUE
        assert step.examined == DUE
        assert step.outbox_rows == DUE
        assert step.left_due == 0
        assert step.uses_index, step.plan
        assert len(step.again_seconds) == 1
    phases = result.steps[-1].phases
    assert phases is not None and phases["due_for_scan"] > 0 and phases["domain scan"] > 0

    # The report renders, and writing it replaces its own section only.
    written = check_section_writes(tmp_path, bench.NAME, bench.TITLE, text, bench.ROW)
    assert written.startswith("# Benchmarks\n\nIntro.")
    assert digest(common.README) == readme
