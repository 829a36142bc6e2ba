"""The receipt-to-SMS benchmark (bench/receipt_to_sms.py), run small in both shapes: `motcua up`
(SQLite, its own broker and second process) and intake, tracker and notifier as processes on
PostgreSQL, each with a fake SMS gateway, dossiers posted at a fixed rate.

Checks that every dossier created was texted once, to the right phone, and nothing else, that
the services' own timestamps were read in both shapes, and what the section says — never
timings. With CI=true a missing PostgreSQL or broker fails the run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from bench import common
from bench import receipt_to_sms as bench
from tests.e2e.bench_support import bench_database, check_section_writes, digest

pytestmark = [pytest.mark.postgres, pytest.mark.broker]


async def test_small_run_texts_every_dossier_once_in_both_shapes(tmp_path: Path) -> None:
    readme = digest(common.README)
    async with bench_database("sms") as url:
        options = bench.Options(
            rates=[20.0], duration=2.0, database_url=url, folder=tmp_path, warm_up=3,
            drain_timeout=60, ceiling_seconds=1.0, ceiling_warm_up=0,
        )  # fmt: skip
        result = await bench.run(options)
        pg = await common.postgres_info(url)

    assert bench.problems(result) == []
    assert [s.shape for s in result.shapes] == ["embedded", "postgres"]
    for shape in result.shapes:
        assert shape.ceiling is not None and shape.ceiling.level.created > 0
        (measured,) = shape.rates
        assert len(measured.posted) == 40
        assert not measured.failures()
        assert len(measured.created) == 40
        assert measured.arrived == 40 and measured.missing == 0
        assert measured.duplicates == 0 and measured.strays == 0
        assert all(latency > 0 for latency in measured.latencies.values())
        assert all(len(seconds) == 40 for seconds in measured.stages.values()), shape.shape
        assert measured.cpu_total is not None
        assert set(measured.cpu_total.groups) == {*shape.groups, "other"}
        assert measured.cpu_ms(*shape.groups) > 0
        assert shape.notices["accepted"] == 40 + options.warm_up
    embedded, postgres = result.shapes
    assert embedded.exit_codes == [0]
    assert embedded.rates[0].cpu_ms("up: tracker+notifier") > 0  # the second process counted
    assert postgres.exit_codes == [0, 0, 0]

    text = bench.section(result, "python -m bench.receipt_to_sms", date.today(),
                         common.machine(), pg)  # fmt: skip
    assert text.count("| 20/s | 40 | 40 | 0 |") == 2
    assert text.count("not measured at 200 dossiers/s") == 2
    for shape in result.shapes:
        assert shape.ceiling is not None
        assert f"Ceiling {shape.ceiling.rate:,.0f} req/s in this run" in text
        assert f"### Figures: {shape.title}" in text
    assert "- **Ceiling.**" in text and "- **Embedded.**" in text
    check_section_writes(tmp_path, bench.NAME, bench.TITLE, text, bench.ROW)
    assert digest(common.README) == readme


def test_the_verdict_says_met_or_missed_for_latency_and_cpu() -> None:
    def rate(created: int, cpu_cores: float) -> bench.RateResult:
        posted = [bench.Posted(i, due=i / 200, sent=i / 200, answered=i / 200 + 0.01,
                               status=201 if i < created else 503) for i in range(200)]  # fmt: skip
        groups = {"up: intake": cpu_cores, "other": 0.1}
        cpu = common.CpuShares(wall=1.0, groups=groups, machine=cpu_cores + 0.1)
        return bench.RateResult(
            rate=200.0, seconds=1.0, posted=posted,
            latencies={i: 0.3 for i in range(created)}, after_answer=[0.29] * created,
            duplicates=0, strays=0, cpu=cpu, cpu_total=cpu,
        )  # fmt: skip

    good = bench.ShapeRun("embedded", ("up: intake",), rates=[rate(200, 0.7)])
    assert "latency **met**" in bench.verdict(good)
    assert "CPU **met**: 3.5 ms a dossier" in bench.verdict(good)
    bad = bench.ShapeRun("postgres", ("up: intake",), rates=[rate(150, 1.5)])
    assert "latency **missed**" in bench.verdict(bad) and "150 of 200 dossiers" in bench.verdict(
        bad
    )
    assert "CPU **missed**: 10.0 ms a dossier" in bench.verdict(bad)
    assert "within 25%" not in bench.verdict(good) + bench.verdict(bad)
    close = bench.ShapeRun("embedded", ("up: intake",), rates=[rate(200, 1.08)])
    assert "CPU **missed**: 5.4 ms a dossier" in bench.verdict(close)
    assert "within 25% of it" in bench.verdict(close)


def test_the_verdict_gives_the_cpu_without_the_harness_and_scaled_to_the_targets_speed() -> None:
    posted = [bench.Posted(i, due=i / 200, sent=i / 200, answered=i / 200 + 0.01, status=201)
              for i in range(200)]  # fmt: skip
    groups = {"intake": 0.8, "generator": 0.2, "gateway": 0.1, "other": 0.1}
    cpu = common.CpuShares(wall=1.0, groups=groups, machine=1.2)
    measured = bench.RateResult(
        rate=200.0, seconds=1.0, posted=posted, latencies={i: 0.3 for i in range(200)},
        after_answer=[0.29] * 200, duplicates=0, strays=0, cpu=cpu, cpu_total=cpu,
    )  # fmt: skip
    shape = bench.ShapeRun("postgres", ("intake", "gateway", "generator"), rates=[measured])
    text = bench.verdict(shape)
    assert "CPU **missed**: 5.5 ms a dossier" in text  # the harness stays in the figure
    assert "motcua's own processes, the broker and the database 4.0 ms" in text
    assert "gateway and generator 1.5 ms" in text
    assert "at the speed of the run the target was set in" not in text  # no ceiling, no scale

    class HalfSpeed:  # a ceiling at half the reference run's rate
        rate = bench.REFERENCE_CEILING / 2

        def ratio(self, figure: float, unit: str) -> str:
            return f"{figure:.0f} {unit}"

    shape.ceiling = HalfSpeed()  # type: ignore[assignment]
    assert "2.8 ms at the speed of the run the target was set in" in bench.verdict(shape)


def test_a_flat_kafka_stage_is_explained_as_the_broker_fetch_wait() -> None:
    def rate(offered: float, kafka_seconds: float) -> bench.RateResult:
        stages = {name: [0.02] * 10 for name in bench.STAGES}
        stages[bench.STAGES[1]] = [kafka_seconds] * 10
        return bench.RateResult(
            rate=offered, seconds=1.0, posted=[], latencies={}, after_answer=[],
            duplicates=0, strays=0, stages=stages,
        )  # fmt: skip

    assert "fetch_max_wait_ms" in bench._fetch_paragraph([rate(20, 0.126), rate(200, 0.13)])
    assert bench._fetch_paragraph([rate(20, 0.126), rate(200, 0.9)]) == ""  # a backlog, not a wait
