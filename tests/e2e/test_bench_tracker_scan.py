"""The tracker scan benchmark (bench/tracker_scan.py), run small on PostgreSQL.

Checks what the benchmark's figures rest on — every due dossier flagged once, none left due,
the due rows found through the partial index on next_check_at — never timings. It runs in a
database of its own, `motcua_bench_test`, created and dropped here: the suite truncates the
`test` database under other tests. With CI=true an unreachable PostgreSQL fails the run.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bench import common
from bench import tracker_scan as bench
from tests.fixtures.db import PG_URL, unavailable

BENCH_URL = make_url(PG_URL).set(database="motcua_bench_test").render_as_string(hide_password=False)
SIZES = [500, 2000]
DUE = 50

pytestmark = pytest.mark.postgres


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


async def test_small_run_flags_every_due_dossier_through_the_index(tmp_path: Path) -> None:
    try:
        await common.ensure_database(BENCH_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    readme = _digest(bench.README)
    try:
        result = await bench.run(
            BENCH_URL,
            SIZES,
            DUE,
            batch_size=20,  # several batches per scan
            repeats=1,
            counts=bench.TemplateCounts(due_per_window=2, future_per_variant=8),
            ceiling_seconds=1.0,
            ceiling_warm_up=0,
        )
        text = bench.section(
            result,
            "python -m bench.tracker_scan",
            date.today(),
            bench.machine(),
            await bench.postgres_info(BENCH_URL),
        )
    finally:
        await common.drop_database(BENCH_URL)

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
    target = tmp_path / "README.md"
    target.write_text(
        "# Benchmarks\n\nIntro.\n\n<!-- BEGIN other -->\n## Other\n<!-- END other -->\n"
    )
    bench.write_section(target, text)
    bench.write_section(target, text)
    written = target.read_text()
    assert written.count("## Tracker scan") == 1
    assert "## Other" in written and written.startswith("# Benchmarks\n\nIntro.")
    assert _digest(bench.README) == readme
