"""The intake throughput benchmark (bench/intake_throughput.py), run small: the intake as a
real process on SQLite and on PostgreSQL, clerks posting over HTTP at two concurrencies.

Checks what its figures rest on — every request answered 201, every 201 a stored dossier,
every dossier's event published, the processes stop cleanly, the section renders — never
timings. With CI=true a missing PostgreSQL or broker fails the run.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from bench import common
from bench import intake_throughput as bench
from tests.e2e.bench_support import bench_database, check_section_writes, digest

pytestmark = [pytest.mark.postgres, pytest.mark.broker]


async def test_small_run_creates_every_dossier_it_counts(tmp_path: Path) -> None:
    readme = digest(common.README)
    setups = [bench.SETUPS["sqlite"], bench.SETUPS["postgres"]]
    async with bench_database("intake") as url:
        options = bench.Options(
            levels=[1, 3], duration=0.5, database_url=url, profile=False, folder=tmp_path,
            warm_up=0, cost_repeats=20, ceiling_seconds=1.0, ceiling_warm_up=0,
            sustain=3.0, sustain_rate=30, sustain_setups=("sqlite", "postgres"),
        )  # fmt: skip
        result = await bench.run(setups, options)
        pg = await common.postgres_info(url)

    assert bench.problems(result) == []
    assert result.ceiling is not None and result.ceiling.level.created > 0
    assert result.ceiling.level.errors == 0 and result.ceiling.exit_code == 0
    assert result.costs is not None and result.costs.transaction > result.costs.asyncpg > 0
    for setup in result.setups:
        assert [level.concurrency for level in setup.levels] == [1, 3]
        for level in setup.levels:
            assert level.created > 0 and level.errors == 0, level.error_text()
            assert level.cpu is not None and level.cpu.cores("intake") > 0
            # Whoever holds the database writes at every commit: the intake's SQLite file
            # or PostgreSQL's WAL. Not the intake's log on PostgreSQL: a line appended to a
            # page that is still dirty is not counted again (4-12 KB a level, or none).
            writer = "intake" if setup.setup.database == "sqlite" else "postgres"
            assert level.kb_written(writer) > 0
        assert setup.dossiers == setup.posted > 0
        assert setup.backlog_after == 0
        assert setup.exit_codes == [0]
        sustained = setup.sustain
        assert sustained is not None and sustained.due == 90
        assert sustained.created + sustained.not_sent == 90 and sustained.errors == 0
        (trend,) = sustained.rss.values()
        assert len(trend.samples) >= 3 and trend.start > 0
        # the intake's consumer (its deadline read model) reports its lag on /metrics
        assert len(sustained.lag) >= 2 and sustained.most_lag is not None
        assert sustained.most_lag >= 0
        assert sustained.caught_up[1] == 0  # nothing left unread when the run began

    text = bench.section(result, "python -m bench.intake_throughput", date.today(),
                         common.machine(), pg)  # fmt: skip
    for each in setups:
        assert f"#### {each.title}" in text
    assert f"Ceiling {result.ceiling.rate:,.0f} req/s in this run" in text
    assert "- **Ceiling.**" in text
    assert "### Memory under sustained load" in text and "**Memory under sustained load: " in text
    assert "over a run of only 3 s, too short to call" in text
    assert "| Consumer lag, records: most / at the end |" in text
    check_section_writes(tmp_path, bench.NAME, bench.TITLE, text, bench.ROW)
    assert digest(common.README) == readme


def test_bytes_written_are_counted_per_group_from_each_process_own_counter() -> None:
    before = common.CpuSnapshot(0.0, {1: ("a", 0.0), 2: ("b", 0.0)}, 0.0, 10.0, {1: 100, 2: 50})
    after = common.CpuSnapshot(
        1.0,
        {1: ("a", 0.5), 2: ("b", 0.1), 3: ("b", 0.1), 4: ("c", 0.1)},
        0.8,
        12.0,
        {1: 1_100, 2: 50, 3: 999, 4: 7},
    )
    shares = common.cpu_between(before, after, {"one": [1], "started": [2, 3]})
    # process 3 started between the snapshots: all it wrote counts; 4 is in no group
    assert shares.written == {"one": 1_000, "started": 999}


def test_rss_trend_fits_the_last_50_seconds() -> None:
    # 10 MiB in the first 10 s (left out), then 1 MiB a minute for 20 s, then flat for 50 s.
    samples = [(float(t), 100 * 1024 + t * 1024) for t in range(10)]
    samples += [(float(t), 110 * 1024 + (t - 10) * 1024 // 60) for t in range(10, 30)]
    samples += [(float(t), samples[-1][1]) for t in range(30, 81)]
    trend = bench.RssTrend(samples)
    assert trend.start == 100 * 1024 and trend.at(10) == 110 * 1024
    assert trend.window()[0][0] == 30 and trend.window_seconds() == 50
    assert trend.slope() == 0 and trend.flat()
    growing = bench.RssTrend([(float(t), 100 * 1024 + t * 200) for t in range(61)])
    assert abs(growing.slope() - 200 * 60 / 1024) < 1e-9
    assert abs(growing.growth() - 200 * 50 / 1024) < 1e-9 and not growing.flat()


def test_each_setup_is_judged_on_its_own_target_from_issue_12() -> None:
    def level(clerks: int, rate: float, p99_ms: float) -> common.LevelResult:
        seconds = 10.0
        created = round(rate * seconds)
        return common.LevelResult(
            latencies=[p99_ms / 1000] * created, statuses=Counter({201: created}),
            failures=Counter(), concurrency=clerks, seconds=seconds, per_second=[],
        )  # fmt: skip

    def setup(name: str, *levels: common.LevelResult) -> bench.SetupResult:
        return bench.SetupResult(bench.SETUPS[name], list(levels))

    # `motcua up`: 1,000/s at p99 < 50 ms with 32-64 clerks; 16 clerks do not count.
    up = setup("up", level(16, 1200, 40), level(32, 1100, 60), level(64, 1150, 110))
    assert "**missed** (≥ 1,000 dossiers/s at p99 < 50 ms with 32-64 clerks asked)" in (
        bench.setup_verdict(up)
    )
    assert "p99 ≥ 50 ms at every such level; most 1,150/s at 64 clerks" in bench.setup_verdict(up)
    up.levels[1] = level(32, 1100, 45)
    assert "**met**" in bench.setup_verdict(up) and "1,100/s at 32 clerks" in (
        bench.setup_verdict(up)
    )
    # The intake on PostgreSQL: 1,500/s at p99 < 50 ms, at any number of clerks.
    pg = setup("postgres", level(16, 1400, 30), level(64, 1600, 70))
    assert "**missed** (≥ 1,500 dossiers/s at p99 < 50 ms asked)" in bench.setup_verdict(pg)
    assert "best with p99 < 50 ms there 1,400/s at 16 clerks" in bench.setup_verdict(pg)
    assert "**met**" in bench.setup_verdict(setup("sqlite", level(16, 1400, 30)))
    assert "not measured" in bench.setup_verdict(setup("up", level(4, 500, 10)))
