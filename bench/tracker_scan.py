"""One tracker scan over many open dossiers: its cost follows the dossiers crossing a
threshold, not the dossiers open.

Loads open dossiers into PostgreSQL's ``tracker_dossiers`` (COPY), of which exactly ``--due``
have crossed their due-soon or overdue threshold at ``NOW`` while every other one has its next
check after ``NOW``, then times one ``handlers.scan_due`` at ``NOW``. It does so at several
sizes (10,000, 100,000, then ``--dossiers``), loading incrementally with the same dossiers
due, and writes the figures to ``bench/README.md`` (section "Tracker scan"), with the ceiling
measured at the start (``bench.common.measure_ceiling``) and the scan's flags a second as a
share of it::

    .venv/bin/python -m bench.tracker_scan [--dossiers 1000000] [--due 1000] [--quick]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/motcua_bench]

Every row copies a template built through the real domain (``bench/tracker_backlog.py``):
the intake's ``Dossier`` records the receipt (and the start, a transfer), the tracker's
``apply`` turns those events into a ``TrackedDossier``, ``scan`` plays the scanner up to an
hour before ``NOW``, ``to_state`` gives the JSON. Rows differ from their template by id and
code only.

The tracker tables of the database are emptied first: give the benchmark a database of its
own (its name must contain "bench").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import pstats
import re
import statistics
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench import common
from bench.common import Ceiling, asyncpg_dsn, mib
from bench.tracker_backlog import (
    COLUMNS,
    NOW,
    SEED,
    TABLE,
    THRESHOLD_MINUTES,
    Rows,
    TemplateCounts,
    build_templates,
)
from services.core.calendars import CalendarBook
from services.core.runtime.database import create_engine
from services.tracker import handlers
from services.tracker.adapters import repository as repo

NAME = "tracker_scan"
TITLE = "Tracker scan"
ROW = (
    f"| [{TITLE}](#{common.slug(TITLE)}) | `bench/{NAME}.py` | one scan flags 1,000 due dossiers "
    "among 1,000,000 open in under a second, memory flat |"
)
POSTGRES_SETTINGS = ("shared_buffers", "work_mem", "effective_cache_size", "random_page_cost")
BATCH_SIZE = 1000  # scan_due's default, as the tracker runs it
DEFAULT_SIZES = (10_000, 100_000)
DUE_INDEX = "ix_tracker_dossiers_next_check_at"
COPY_CHUNK = 100_000
REPEATS = 4  # the timed scan repeated, to show its spread


# -- database -------------------------------------------------------------------------------


async def copy_rows(conn: asyncpg.Connection, records: Iterable[tuple[Any, ...]]) -> None:
    await conn.copy_records_to_table(TABLE, records=records, columns=COLUMNS)


async def reset_due(conn: asyncpg.Connection, due_records: Sequence[tuple[Any, ...]]) -> None:
    """Put the due dossiers back as loaded (the scan moved them on) and empty the outbox."""
    async with conn.transaction():
        await conn.execute(
            f"DELETE FROM {TABLE} WHERE dossier_id = ANY($1::varchar[])",
            [r[0] for r in due_records],
        )
        await conn.execute("TRUNCATE tracker_outbox")
        await copy_rows(conn, due_records)
    await conn.execute(f"VACUUM (ANALYZE) {TABLE}, tracker_outbox")


@dataclass(frozen=True)
class TableStats:
    seq_scans: int
    index_scans: int
    index_fetches: int  # heap tuples fetched by index scans
    updates: int
    heap_blocks: int  # heap blocks read or found in shared buffers
    index_blocks: int

    def minus(self, other: TableStats) -> TableStats:
        return TableStats(
            *(getattr(self, f) - getattr(other, f) for f in self.__dataclass_fields__)
        )


STATS_SQL = f"""
SELECT t.seq_scan, coalesce(t.idx_scan, 0), coalesce(t.idx_tup_fetch, 0), t.n_tup_upd,
       coalesce(io.heap_blks_read, 0) + coalesce(io.heap_blks_hit, 0),
       coalesce(io.idx_blks_read, 0) + coalesce(io.idx_blks_hit, 0)
FROM pg_stat_user_tables t JOIN pg_statio_user_tables io USING (relid)
WHERE t.relname = '{TABLE}'
"""


async def _force_stats_flush(execute: Callable[[str], Any]) -> None:
    # PostgreSQL 15 flushes a backend's counters when it goes idle, at most once a second;
    # this makes the next flush immediate (older servers: the polling below waits instead).
    with contextlib.suppress(asyncpg.UndefinedFunctionError, sa.exc.DBAPIError):
        await execute("SELECT pg_stat_force_next_flush()")


async def table_stats(conn: asyncpg.Connection) -> TableStats:
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    row = await conn.fetchrow(STATS_SQL)
    return TableStats(*(int(v) for v in row))


def _on_engine(engine: AsyncEngine) -> Callable[[str], Any]:
    async def execute(sql: str) -> None:
        async with engine.connect() as c:  # the pool's one connection: the scan's backend
            await c.exec_driver_sql(sql)

    return execute


async def settled_stats(conn: asyncpg.Connection, engine: AsyncEngine) -> TableStats:
    """The table's counters with everything done so far by both connections reported."""
    await _force_stats_flush(conn.execute)
    await _force_stats_flush(_on_engine(engine))
    return await table_stats(conn)


async def stats_after(
    conn: asyncpg.Connection, engine: AsyncEngine, before: TableStats, updated: int
) -> TableStats:
    """The table's counters once the scan's backend has reported its `updated` rows."""
    stats = await settled_stats(conn, engine)
    deadline = time.monotonic() + 5
    while stats.updates - before.updates < updated and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        stats = await table_stats(conn)
    return stats


@dataclass
class _Capture:
    """The SQL of the due query as the repository sends it, caught on its way to the driver."""

    statement: str | None = None
    parameters: Any = None

    def __call__(self, _c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if self.statement is None and TABLE in statement and "SKIP LOCKED" in statement:
            self.statement, self.parameters = statement, parameters


async def due_query(engine: AsyncEngine, now: datetime, limit: int) -> tuple[str, Any]:
    """``repo.due_for_scan``'s statement and parameters (run once, rolled back)."""
    capture = _Capture()
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with engine.connect() as conn:
            await repo.due_for_scan(conn, now, limit)
            await conn.rollback()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    if capture.statement is None:
        raise RuntimeError("due_for_scan sent no SELECT ... FOR UPDATE SKIP LOCKED")
    return capture.statement, capture.parameters


async def explain(engine: AsyncEngine, statement: str, parameters: Any) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement, in a transaction rolled back."""
    async with engine.connect() as conn:
        result = await conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
        plan = "\n".join(row[0] for row in result)
        await conn.rollback()
    return plan


_DUE_INDEX_ACCESS = re.compile(
    rf"\b(Index Scan using|Index Only Scan using|Bitmap Index Scan on) {DUE_INDEX}\b"
)


def due_index_access(plan: str) -> str | None:
    """How the plan reads the partial index on next_check_at ("Index Scan", "Bitmap Index
    Scan"), or None when it does not."""
    found = _DUE_INDEX_ACCESS.search(plan)
    return found.group(1).removesuffix(" using").removesuffix(" on") if found else None


def uses_due_index(plan: str) -> bool:
    return due_index_access(plan) is not None and "Seq Scan" not in plan


def execution_ms(plan: str) -> float | None:
    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return float(found.group(1)) if found else None


# -- memory -----------------------------------------------------------------------------------


def reset_peak_rss() -> bool:
    """Make VmHWM start again from the current RSS (Linux >= 4.0); False if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


# -- one measured step ----------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    open_dossiers: int
    due: int
    loaded: int  # rows copied to reach this size
    load_seconds: float
    table_bytes: int
    table_pages: int
    plan: str
    sql_ms: float | None
    traced_seconds: float
    traced_flags: int
    tracemalloc_peak: int  # bytes allocated at most during the traced scan
    scan_seconds: float  # the timed scan
    again_seconds: tuple[float, ...]  # the same scan repeated, each after a reset
    flags: int
    examined: int
    outbox_rows: int
    left_due: int
    rss_before: int  # KiB
    rss_after: int
    rss_peak: int | None  # KiB, peak during the timed scan (None: could not reset VmHWM)
    db: TableStats
    phases: dict[str, float] | None = None  # seconds per phase of one more scan
    profile: str | None = None

    @property
    def uses_index(self) -> bool:
        return uses_due_index(self.plan)


async def scan_once(engine: AsyncEngine, calendars: CalendarBook, batch_size: int) -> Any:
    return await handlers.scan_due(engine, calendars, THRESHOLD_MINUTES, NOW, batch_size=batch_size)


async def measure(
    conn: asyncpg.Connection,
    engine: AsyncEngine,
    calendars: CalendarBook,
    due_records: Sequence[tuple[Any, ...]],
    *,
    open_dossiers: int,
    loaded: int,
    load_seconds: float,
    batch_size: int,
    profile: bool,
    repeats: int = 0,
) -> StepResult:
    """EXPLAIN the due query, one scan under tracemalloc, then the timed scan, then
    `repeats` more (each on the due dossiers as loaded). The traced scan also leaves the
    process as a running tracker's is after its previous scan: pool connected, statements
    prepared, calendars built."""
    await reset_due(conn, due_records)
    statement, parameters = await due_query(engine, NOW, batch_size)
    plan = await explain(engine, statement, parameters)

    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    traced = await scan_once(engine, calendars, batch_size)
    traced_seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    await reset_due(conn, due_records)
    before = await settled_stats(conn, engine)
    gc.collect()
    peak_reset = reset_peak_rss()
    memory_before = common.proc_status_kib("self", "VmRSS", "VmHWM")
    started = time.perf_counter()
    report = await scan_once(engine, calendars, batch_size)
    scan_seconds = time.perf_counter() - started
    memory_after = common.proc_status_kib("self", "VmRSS", "VmHWM")
    db = (await stats_after(conn, engine, before, report.examined)).minus(before)

    outbox_rows = await conn.fetchval("SELECT count(*) FROM tracker_outbox")
    left_due = await conn.fetchval(f"SELECT count(*) FROM {TABLE} WHERE next_check_at <= $1", NOW)
    size = await conn.fetchrow(
        f"SELECT pg_total_relation_size('{TABLE}'), pg_relation_size('{TABLE}') / 8192"
    )
    again = []
    for _ in range(repeats):
        await reset_due(conn, due_records)
        gc.collect()
        started = time.perf_counter()
        repeated = await scan_once(engine, calendars, batch_size)
        again.append(time.perf_counter() - started)
        if repeated.flags != report.flags:
            raise RuntimeError(f"a repeated scan raised {repeated.flags} flags")
    phases = profiled = None
    if profile or scan_seconds >= 1:  # a slow scan is always looked into
        await reset_due(conn, due_records)
        with timed_phases(calendars) as spent:
            started = time.perf_counter()
            await scan_once(engine, calendars, batch_size)
            spent["total"] = time.perf_counter() - started
        phases = dict(spent)
        await reset_due(conn, due_records)
        profiler = cProfile.Profile()
        profiler.enable()
        await scan_once(engine, calendars, batch_size)
        profiler.disable()
        profiled = profile_text(profiler)
    return StepResult(
        open_dossiers=open_dossiers,
        due=len(due_records),
        loaded=loaded,
        load_seconds=load_seconds,
        table_bytes=int(size[0]),
        table_pages=int(size[1]),
        plan=plan,
        sql_ms=execution_ms(plan),
        traced_seconds=traced_seconds,
        traced_flags=traced.flags,
        tracemalloc_peak=peak,
        scan_seconds=scan_seconds,
        again_seconds=tuple(again),
        flags=report.flags,
        examined=report.examined,
        outbox_rows=int(outbox_rows),
        left_due=int(left_due),
        rss_before=memory_before["VmRSS"],
        rss_after=memory_after["VmRSS"],
        rss_peak=memory_after["VmHWM"] if peak_reset else None,
        db=db,
        phases=phases,
        profile=profiled,
    )


# What a scan does, timed by wrapping the functions scan_due calls (name, where, attribute).
PHASES = (
    ("due_for_scan", repo, "due_for_scan"),
    ("from_state", repo, "from_state"),
    ("calendar", None, "for_schedule_dict"),
    ("domain scan", handlers, "scan"),
    ("update_many", repo, "update_many"),
    ("to_state", repo, "to_state"),
    ("write_events", repo, "write_events"),
    ("envelope_of", repo, "envelope_of"),
)


@contextlib.contextmanager
def timed_phases(calendars: CalendarBook) -> Iterator[dict[str, float]]:
    """Seconds spent in each function of PHASES while the block runs (wall time, nested
    calls included in their caller's)."""
    spent: dict[str, float] = dict.fromkeys((name for name, _, _ in PHASES), 0.0)
    saved: list[tuple[Any, str, Any]] = []

    def wrapped(name: str, function: Any) -> Any:
        if asyncio.iscoroutinefunction(function):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return await function(*args, **kwargs)
                finally:
                    spent[name] += time.perf_counter() - started

            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - started

        return timed

    try:
        for name, owner, attribute in PHASES:
            target = calendars if owner is None else owner
            saved.append((target, attribute, target.__dict__.get(attribute)))
            setattr(target, attribute, wrapped(name, getattr(target, attribute)))
        yield spent
    finally:
        for target, attribute, original in reversed(saved):
            if original is None:
                delattr(target, attribute)  # a method: the class's again
            else:
                setattr(target, attribute, original)


def phase_rows(phases: dict[str, float]) -> list[tuple[str, float]]:
    """The scan's wall time split into parts that add up to it."""
    p = phases
    rows = [
        (
            "SELECT … FOR UPDATE SKIP LOCKED via the index, rows fetched, JSON parsed",
            p["due_for_scan"] - p["from_state"],
        ),
        ("`from_state`: state JSON → `TrackedDossier`", p["from_state"]),
        ("`CalendarBook.for_schedule_dict` (schedule parsed per dossier)", p["calendar"]),
        ("domain `scan` (thresholds, working minutes)", p["domain scan"]),
        ("`to_state` of the changed dossiers", p["to_state"]),
        ("UPDATE executemany (1 statement per row)", p["update_many"] - p["to_state"]),
        ("`envelope_of`: flags → `Envelope`", p["envelope_of"]),
        (
            "outbox INSERT (envelopes as JSON, ON CONFLICT DO NOTHING)",
            p["write_events"] - p["envelope_of"],
        ),
    ]
    measured = p["due_for_scan"] + p["calendar"] + p["domain scan"]
    measured += p["update_many"] + p["write_events"]
    rows.append(("the rest: BEGIN/COMMIT, pool checkout and pre-ping, loop", p["total"] - measured))
    rows.append(("**total**", p["total"]))
    return rows


def profile_text(profiler: cProfile.Profile, top: int = 25) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    text = out.getvalue()
    # Keep the table; shorten the site-packages paths.
    text = re.sub(r"\S*/(site-packages|lib/python3\.\d+)/", "", text)
    return re.sub(rf"{re.escape(str(Path.cwd()))}/", "", text).strip()


@dataclass(frozen=True)
class Run:
    url: str
    batch_size: int
    template_seconds: float
    due_templates: int
    future_templates: int
    due_kinds: dict[str, int]
    steps: list[StepResult]
    load_average: tuple[float, float]  # 1-minute load average at the start and at the end
    ceiling: Ceiling | None = None  # measured at the start of the run

    def flags_per_second(self) -> float:
        """The headline: flags a second of the timed scan at the largest size."""
        last = self.steps[-1]
        return last.flags / last.scan_seconds if last.scan_seconds else float("nan")


def sizes_for(dossiers: int, due: int, sizes: Sequence[int] | None = None) -> list[int]:
    chosen = sorted({s for s in (sizes or DEFAULT_SIZES) if s < dossiers} | {dossiers})
    if chosen[0] <= due:
        raise ValueError(f"every size must exceed the {due} dossiers due: {chosen}")
    return chosen


async def run(
    url: str,
    sizes: Sequence[int],
    due: int,
    *,
    batch_size: int = BATCH_SIZE,
    counts: TemplateCounts = TemplateCounts(),
    seed: int = SEED,
    profile: bool = False,
    repeats: int = REPEATS,
    ceiling_seconds: float = common.CEILING_SECONDS,
    ceiling_warm_up: float = common.CEILING_WARM_UP,
    say: Callable[[str], None] = lambda _: None,
) -> Run:
    """Measure the ceiling, then load incrementally to each size (with the same `due`
    dossiers due) and measure."""
    load_at_start = common.load_average()
    ceiling = await common.measure_ceiling(ceiling_seconds, warm_up=ceiling_warm_up)
    say(ceiling.line())
    await common.fresh_postgres(url, ["tracker"])
    calendars = CalendarBook()
    started = time.perf_counter()
    templates = build_templates(calendars, counts, seed)
    template_seconds = time.perf_counter() - started
    say(
        f"{len(templates.due)} due and {len(templates.future)} future templates "
        f"in {template_seconds:.1f} s"
    )
    rows = Rows(seed + 1)
    due_pairs = list(rows.pairs(templates.due, due))
    due_records = [record for _, record in due_pairs]
    due_kinds = Counter(template.kind for template, _ in due_pairs)

    conn = await asyncpg.connect(asyncpg_dsn(url))
    engine = create_engine(url)
    steps: list[StepResult] = []
    future_loaded = 0
    try:
        for size in sizes:
            started = time.perf_counter()
            target = size - due
            while future_loaded < target:
                count = min(COPY_CHUNK, target - future_loaded)
                await copy_rows(conn, rows.make(templates.future, count))
                future_loaded += count
                say(f"  loaded {future_loaded + due:,} / {size:,}")
            load_seconds = time.perf_counter() - started
            loaded = size - (steps[-1].open_dossiers if steps else 0)
            step = await measure(
                conn,
                engine,
                calendars,
                due_records,
                open_dossiers=size,
                loaded=loaded,
                load_seconds=load_seconds,
                batch_size=batch_size,
                profile=profile or size == sizes[-1],
                repeats=repeats,
            )
            steps.append(step)
            say(
                f"{size:>9,} open: {step.flags} flags, {step.examined} examined, "
                f"scan {step.scan_seconds * 1000:.0f} ms, index: {step.uses_index}"
            )
    finally:
        await engine.dispose()
        await conn.close()
    return Run(
        url=url,
        batch_size=batch_size,
        template_seconds=template_seconds,
        due_templates=len(templates.due),
        future_templates=len(templates.future),
        due_kinds=dict(due_kinds),
        steps=steps,
        load_average=(load_at_start, common.load_average()),
        ceiling=ceiling,
    )


def problems(result: Run) -> list[str]:
    """What makes the run fail its acceptance (empty: passed)."""
    found = []
    for s in result.steps:
        where = f"{s.open_dossiers:,} open"
        if s.flags != s.due or s.traced_flags != s.due:
            found.append(f"{where}: {s.flags} flags (traced: {s.traced_flags}), not {s.due}")
        if s.examined != s.due:
            found.append(f"{where}: {s.examined} rows examined, not {s.due}")
        if s.outbox_rows != s.due or s.left_due:
            found.append(f"{where}: {s.outbox_rows} outbox rows, {s.left_due} still due")
    # The acceptance size must read the due dossiers through the index only; on a small
    # table with many due the planner may rightly prefer reading it all (reported, no fault).
    last = result.steps[-1]
    if not last.uses_index:
        found.append(f"{last.open_dossiers:,} open: the due query does not use {DUE_INDEX}")
    if last.db.seq_scans:
        found.append(f"{last.open_dossiers:,} open: {last.db.seq_scans} sequential scans")
    slowest = max((last.scan_seconds, *last.again_seconds))
    if slowest >= 1:
        found.append(f"{last.open_dossiers:,} open: a scan took {slowest:.2f} s")
    return found


# -- report -----------------------------------------------------------------------------------


def figures_table(steps: Sequence[StepResult], ceiling: Ceiling | None = None) -> str:
    lines = [
        "| Open dossiers | Due | Flags raised | Rows examined | Scan wall time "
        "| Flags/s (share of the ceiling) "
        "| Same scan again: median (max) | Due query in PostgreSQL | Plan | Seq scans "
        "| Heap / index blocks touched | Table size | RSS before → after (peak) "
        "| tracemalloc peak |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: "
        "| --- | ---: |",
    ]
    for s in steps:
        per_second = s.flags / s.scan_seconds if s.scan_seconds else float("nan")
        share = f" ({ceiling.share(per_second):.0%})" if ceiling else ""
        peak = f" ({mib(s.rss_peak)})" if s.rss_peak is not None else ""
        sql = f"{s.sql_ms:.1f} ms" if s.sql_ms is not None else "?"
        lines.append(
            f"| {s.open_dossiers:,} | {s.due:,} | {s.flags:,} | {s.examined:,} "
            f"| **{s.scan_seconds * 1000:.0f} ms** | {per_second:,.0f}{share} "
            f"| {_spread(s.again_seconds)} | {sql} "
            f"| {due_index_access(s.plan) or 'Seq Scan'} | {s.db.seq_scans} "
            f"| {s.db.heap_blocks:,} / {s.db.index_blocks:,} "
            f"| {s.table_bytes / 2**20:,.0f} MiB ({s.table_pages:,} pages) "
            f"| {mib(s.rss_before)} → {mib(s.rss_after)}{peak} "
            f"| {s.tracemalloc_peak / 2**20:.1f} MiB |"
        )
    return "\n".join(lines)


def phases_table(steps: Sequence[StepResult]) -> str:
    """Time per part of one scan, a column per size (the last with its share)."""
    looked = [s for s in steps if s.phases]
    if not looked:
        return ""
    head = " | ".join(f"{s.open_dossiers:,} open" for s in looked)
    lines = [
        f"| Part of the scan | {head} | Share at {looked[-1].open_dossiers:,} |",
        "| --- |" + " ---: |" * (len(looked) + 1),
    ]
    columns = [phase_rows(s.phases) for s in looked if s.phases]
    total = looked[-1].phases["total"] if looked[-1].phases else 1.0
    for index, (name, last_seconds) in enumerate(columns[-1]):
        cells = " | ".join(f"{column[index][1] * 1000:.1f} ms" for column in columns)
        lines.append(f"| {name} | {cells} | {last_seconds / total:.0%} |")
    return "\n".join(lines)


def _spread(seconds: Sequence[float]) -> str:
    if not seconds:
        return "–"
    median = statistics.median(seconds) * 1000
    return f"{median:.0f} ms ({max(seconds) * 1000:.0f} ms) ×{len(seconds)}"


def load_table(steps: Sequence[StepResult]) -> str:
    lines = [
        "| Rows copied | Time | Rows per second | Open dossiers after |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for s in steps:
        rate = s.loaded / s.load_seconds if s.load_seconds else 0
        lines.append(
            f"| {s.loaded:,} | {s.load_seconds:.1f} s | {rate:,.0f} | {s.open_dossiers:,} |"
        )
    return "\n".join(lines)


def section(
    result: Run, command: str, today: date, host: dict[str, str], pg: dict[str, str]
) -> str:
    first, last = result.steps[0], result.steps[-1]
    verdict = "passes" if not problems(result) else "FAILS"
    ratio = last.scan_seconds / first.scan_seconds if first.scan_seconds else float("nan")
    kinds = " and ".join(
        f"{n:,} {k.replace('_', ' ')}" for k, n in sorted(result.due_kinds.items())
    )
    access = due_index_access(last.plan) or "no index"
    growth = max(_growth(s) for s in result.steps) / 1024
    peaks = [s.tracemalloc_peak / 2**20 for s in result.steps]
    rss = [max(s.rss_before, s.rss_after) for s in result.steps]
    small = [s for s in result.steps if not s.uses_index]
    headline = (
        f" ({result.ceiling.ratio(result.flags_per_second(), 'flags/s')})" if result.ceiling else ""
    )
    parts = [
        "## Tracker scan",
        "",
        "Acceptance: *the scan's cost follows the number of dossiers crossing a threshold, "
        "not the number open (an indexed next-threshold time, no full scans). A benchmark "
        "loads 1,000,000 open dossiers into PostgreSQL and shows one scan that flags 1,000 of "
        "them in under a second, with memory flat.*",
        "",
        f"**Result: {verdict}.** One `scan_due` over {last.open_dossiers:,} open dossiers "
        f"raised {last.flags:,} flags in **{last.scan_seconds * 1000:.0f} ms**{headline}. "
        "PostgreSQL "
        f"found the {last.due:,} due rows in {last.sql_ms or 0:.1f} ms ({access} on "
        f"`{DUE_INDEX}`; "
        f"{last.db.seq_scans} sequential scans of the table during the scan). With "
        f"{last.open_dossiers // first.open_dossiers}× as many open dossiers "
        f"({first.open_dossiers:,} → {last.open_dossiers:,}) the same scan took {ratio:.2f}× "
        "as long. Memory is flat: resident memory grew by at most "
        f"{growth:.1f} MiB during any scan, the process stayed at "
        f"{mib(min(rss))}–{mib(max(rss))} resident from the smallest size to the largest, "
        f"and the Python allocations of a scan peaked at {min(peaks):.1f}–{max(peaks):.1f} MiB "
        "whatever the number of open dossiers (they follow the batch of due dossiers).",
        "",
        common.date_line(today),
        common.machine_line(host, speed=False),
        common.postgres_line(pg, *POSTGRES_SETTINGS),
        f"- Python {host['python']}, SQLAlchemy {host['sqlalchemy']}, asyncpg {host['asyncpg']}",
        common.load_line(result.load_average, "the benchmark itself keeps one core busy"),
        *common.command_lines(
            "creates the database if missing, runs the tracker's migrations, empties its "
            "tables, loads, measures, rewrites this section",
            command,
        ),
        "",
        "### Method",
        "",
        f"- **Data.** Every row copies one of {result.due_templates + result.future_templates:,} "
        "templates built through the real domain: the intake's `Dossier` records a receipt "
        "(for some also a start, and a transfer to another agency with allotted hours) for "
        "one of seven procedures of six agencies (working days with and without a 15:00 "
        "cut-off, working hours, calendar days; two office schedules, one with Saturday "
        "mornings); the tracker's `apply` turns those events into a `TrackedDossier`; the "
        "domain's `scan` plays a scanner that kept up until an hour before the scan, at every "
        "threshold crossed by then; `to_state` gives the `state` JSON, the repository's "
        "`columns_of` the other columns. Rows differ from their template by a fresh uuid4 id "
        "and a code numbered per agency and day. They are copied with asyncpg's "
        "`copy_records_to_table`, the migrated indexes in place.",
        f"- **Due.** The scan runs at the injected instant {NOW.isoformat()} (a Friday) with "
        f"the default threshold of {THRESHOLD_MINUTES} working minutes. Exactly "
        f"{last.due:,} dossiers ({kinds}) crossed a threshold in the hour before (a scanner "
        "back from an hour's outage): the scan must raise one flag for each and move its "
        "`next_check_at` on. Every other dossier is open with its `next_check_at` after the "
        "scan, so all of them are in the partial index.",
        "- **Sizes.** The table grows by COPY to each size in turn, the same dossiers due. "
        "Before each scan below, the due dossiers are put back as loaded (deleted and copied "
        "again), the outbox is emptied and the table is `VACUUM (ANALYZE)`d.",
        "- **At each size**, on the same data: `EXPLAIN (ANALYZE, BUFFERS)` of the very "
        "statement `repo.due_for_scan` sends (caught on its way to the driver, run in a "
        "transaction rolled back); one scan under `tracemalloc` (peak of the Python "
        "allocations during the scan; tracing slows it, so it is not timed); then the "
        f"**timed scan**: one `handlers.scan_due` call at its default batch of "
        f"{result.batch_size:,}, by a process that has scanned before like a running tracker "
        "(pool connected, statements prepared, calendars built). RSS is VmRSS of "
        "`/proc/self/status` before and after, the peak VmHWM after resetting it through "
        "`/proc/self/clear_refs`. Sequential scans and blocks touched (read or found in "
        "shared buffers, reads and writes alike) are the differences of `pg_stat_user_tables` "
        "and `pg_statio_user_tables` over the timed scan. The same scan is then repeated, "
        "each time after the same reset, for its spread.",
        "- Checked at each size: flags raised = rows examined = dossiers due = rows in the "
        "outbox, and no dossier left due after the scan; at the largest size the plan must "
        "use the index and the scan must not read the table sequentially.",
    ]
    if result.ceiling:
        parts.append(
            common.ceiling_method(
                result.ceiling, "the timed scan's flags a second (flags raised ÷ its wall time)"
            )
            + " A scan is not an HTTP request: the share is a yardstick of how fast this "
            "machine was for one Python process at the time, not a like-for-like comparison."
        )
    parts += [
        "",
        "### Figures",
        "",
        figures_table(result.steps, result.ceiling),
        "",
    ]
    if result.ceiling:
        parts += [result.ceiling.sentence(), ""]
    if small:
        parts += [
            "On the smaller tables, where the due rows are a larger share, the planner "
            "prefers reading the whole (small) table: "
            + ", ".join(f"{s.open_dossiers:,} open" for s in small)
            + ".",
            "",
        ]
    parts += [
        f"From {first.open_dossiers:,} to {last.open_dossiers:,} open dossiers the blocks the "
        f"scan touched went from {first.db.heap_blocks + first.db.index_blocks:,} to "
        f"{last.db.heap_blocks + last.db.index_blocks:,} (deeper B-trees to descend for each "
        "row read, updated and indexed again), the Python work not at all: the scan reads and "
        "writes the due rows only.",
        "",
        f"Templates built in {result.template_seconds:.1f} s. Loading:",
        "",
        load_table(result.steps),
        "",
        f"### The due query at {last.open_dossiers:,} open dossiers",
        "",
        "```",
        last.plan,
        "```",
    ]
    if last.phases:
        parts += [
            "",
            "### Where the time goes",
            "",
            "One more scan (after the same reset), with the functions `scan_due` calls timed "
            "by wrappers:",
            "",
            phases_table(result.steps),
        ]
    if last.profile:
        parts += [
            "",
            "cProfile of one more scan (profiling slows it; internal time, top entries):",
            "",
            "```",
            last.profile,
            "```",
        ]
    return "\n".join(parts)


def _growth(step: StepResult) -> int:
    return max(step.rss_after, step.rss_peak or 0) - step.rss_before


def _hhmm(at: datetime) -> str:
    return at.strftime("%H:%M")


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = common.arguments(NAME, __doc__)
    parser.add_argument("--dossiers", type=int, default=1_000_000, help="open dossiers at most")
    parser.add_argument("--due", type=int, default=1000, help="dossiers due at the scan")
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="smaller sizes measured on the way (comma-separated; those below --dossiers)",
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument(
        "--repeats", type=int, default=REPEATS, help="times the timed scan is repeated"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="look into one more scan at every size (the largest always is)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="5,000 then 20,000 open dossiers, the scan once more, the ceiling for 2 s "
        "(a smoke run)",
    )
    common.output_arguments(parser)
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, command: str) -> int:
    if args.quick:
        args.dossiers, args.sizes, args.repeats = 20_000, "5000", 1
    sizes = sizes_for(args.dossiers, args.due, [int(s) for s in args.sizes.split(",") if s])
    result = await run(
        args.database_url,
        sizes,
        args.due,
        batch_size=args.batch_size,
        profile=args.profile,
        repeats=args.repeats,
        **common.ceiling_options(args.quick),
        say=lambda line: print(line, flush=True),
    )
    print()
    print(figures_table(result.steps, result.ceiling))
    if result.ceiling:
        print(result.ceiling.sentence())
    print()
    print(result.steps[-1].plan)
    if result.steps[-1].phases:
        print()
        print(phases_table(result.steps))
    if result.steps[-1].profile:
        print()
        print(result.steps[-1].profile)
    found = problems(result) + (result.ceiling.problems() if result.ceiling else [])
    pg = await common.postgres_info(args.database_url, POSTGRES_SETTINGS)
    return common.conclude(
        args, NAME, ROW, found, lambda host: section(result, command, date.today(), host, pg)
    )


def main(argv: Sequence[str] | None = None) -> int:
    # The scan logs one line per call; common.main keeps the output to the figures.
    return common.main(NAME, argv, parse_args, main_async)


if __name__ == "__main__":
    sys.exit(main())
