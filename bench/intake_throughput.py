"""Intake throughput: POST /dossiers at rising concurrency, on the embedded default and on
PostgreSQL, with p50/p99 latency.

Runs the intake as `motcua` runs it — a real server process (uvicorn, one worker) with a real
Kafka-protocol broker — and drives it with clerks posting dossiers over keep-alive HTTP
connections, each clerk waiting for its answer before the next (closed loop), for a fixed time
at each concurrency. Setups: `up` (`motcua up`: the embedded default, all three services on SQLite,
the intake in the process started and the tracker and notifier in its second process, its own
broker), `sqlite` (`motcua intake` alone on SQLite), `postgres`
(`motcua intake` on PostgreSQL) and `postgres-x2` (two `motcua intake` processes on one
PostgreSQL, the clerks spread over both); `ceiling` runs bench/ceiling_app.py through the
same levels. Every run starts with the ceiling at one concurrency (`common.measure_ceiling`),
each setup's rate shown as a share of it. With `--sustain [SECONDS]` the setups of
`--sustain-setups` (`up` unless told) then get SECONDS (60) of dossiers offered at
`--sustain-rate` (the 1,000/s target) open loop, the service process's RSS sampled every
second: memory under sustained load. Writes the figures to bench/README.md::

    .venv/bin/python -m bench.intake_throughput [--profile] [--levels 1,4,16,32,64]
        [--duration 6] [--setups up,sqlite,postgres,postgres-x2,ceiling]
        [--sustain [60]] [--sustain-rate 1000] [--sustain-setups up]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/motcua_bench]

The intake tables of the PostgreSQL database are emptied first: give the benchmark a database
of its own (its name must contain "bench").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bench import common
from bench.common import (
    AGENCIES,
    BODIES_PER_AGENCY,
    PROCEDURES,
    REQUEST_TIMEOUT,
    TRANSPORT_ERRORS,
    Answers,
    Ceiling,
    CeilingProcess,
    Clerk,
    CpuShares,
    CpuSnapshot,
    HttpConnection,
    LevelResult,
    ServiceProcess,
    bodies_by_agency,
    drive,
    mib,
    ms,
)
from bench.profiling import (
    GROUP_COMMIT,
    RECEIPT_HANDLERS,
    WAITING,
    Profile,
    Recorder,
    have_py_spy,
    profile_tables,
)
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import EmbeddedBroker
from services.intake.adapters import tables as t

NAME = "intake_throughput"
TITLE = "Intake throughput"
ROW = (
    f"| [{TITLE}](#{common.slug(TITLE)}) | `bench/{NAME}.py` | dossiers/s and p50/p99 latency of "
    "POST /dossiers at rising concurrency, embedded default and PostgreSQL (target ≥ 1,000/s at "
    "p99 < 50 ms); with `--sustain`, RSS over a minute at the target rate |"
)
TARGET_RATE = 1000  # dossiers per second
TARGET_P99 = 0.050  # seconds
SUSTAIN_SECONDS = 60.0  # --sustain without a value
SUSTAIN_IN_FLIGHT = 256  # requests open at once at most; one due while all are open is not sent
RSS_EVERY = 1.0  # seconds between two samples of a process's VmRSS
LAG_EVERY = 5  # RSS samples between two reads of the services' consumer lag (/metrics)
LAG_SERIES = "motcua_consumer_lag_records"
CATCH_UP_TIMEOUT = 180.0  # seconds the consumers get to read the levels' records first
SETTLE = 10.0  # seconds: the start of the sustained run, never in the slope
TREND_WINDOW = 50.0  # seconds: the slope is fitted over the last this many (after SETTLE)
# "flat": growth along the fitted line over the window at most this, in MiB. Above the fill of
# a bounded cache (one SQLite connection keeps up to 2 MiB of pages by default; the bare
# ceiling app gained 3.9 MiB in its first 30 s at 256 open requests, then none), well
# below what a leak of 1 KiB a dossier gives at the target rate (about 49 MiB in 50 s).
FLAT_MIB = 4.0
DEFAULT_LEVELS = (1, 4, 16, 32, 64)  # the target names 32-64 clerks
DEFAULT_DURATION = 6.0  # seconds per level
WARM_UP = 2.0  # seconds at the highest level before the first measured one
OURS = ("intake", "generator", "postgres", "broker")  # the CPU groups this run brings
# An intake process busier than this is taken as using its one core to the full.
SATURATED_CORES = 0.95
# Two figures of one run closer than this are not told apart: levels of one setup differ so.
RUN_TO_RUN = 0.1


@dataclass(frozen=True)
class Setup:
    name: str
    title: str
    database: str  # "sqlite" | "postgres"
    replicas: int = 1
    all_in_one: bool = False
    # Issue 12's target for the setup: this many dossiers/s at p99 < 50 ms, with a number of
    # clerks in this range (None: at any level).
    target_rate: int = TARGET_RATE
    target_clerks: tuple[int, int] | None = None

    def target(self) -> str:
        asked = f"≥ {self.target_rate:,} dossiers/s at p99 < 50 ms"
        if self.target_clerks is None:
            return asked
        low, high = self.target_clerks
        return f"{asked} with {low}-{high} clerks"


SETUPS = {
    s.name: s
    for s in (
        Setup("up", "`motcua up`: the embedded default (all three services, SQLite)", "sqlite",
              all_in_one=True, target_clerks=(32, 64)),
        Setup("sqlite", "`motcua intake` alone on SQLite", "sqlite"),
        Setup("postgres", "`motcua intake` on PostgreSQL", "postgres", target_rate=1500),
        Setup("postgres-x2", "two `motcua intake` processes on PostgreSQL", "postgres",
              replicas=2),
        Setup("ceiling", "ceiling: a bare FastAPI endpoint validating the same body "
              "(`bench/ceiling_app.py`: no token, no database)", "none"),
    )
}  # fmt: skip


# -- one setup ----------------------------------------------------------------------------


@dataclass
class SetupResult:
    setup: Setup
    levels: list[LevelResult] = field(default_factory=list)
    profile: Profile | None = None
    profile_level: LevelResult | None = None
    warm_up: LevelResult | None = None
    dossiers: int = 0  # rows in the intake's table at the end
    posted: int = 0  # 201s over the whole run, warm-up and profiled run included
    backlog_after: int = 0  # outbox rows still unpublished after the drain wait
    exit_codes: list[int | None] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    sustain: SustainResult | None = None


@dataclass(frozen=True)
class Options:
    levels: Sequence[int]
    duration: float
    database_url: str
    profile: bool
    folder: Path
    warm_up: float = WARM_UP
    drain_timeout: float = 60.0
    cost_repeats: int = 1000  # statements timed for RoundTripCosts
    ceiling_seconds: float = common.CEILING_SECONDS
    ceiling_warm_up: float = common.CEILING_WARM_UP
    sustain: float = 0.0  # seconds of open-loop load after the levels, RSS sampled; 0: none
    sustain_rate: float = TARGET_RATE  # dossiers/s offered then
    sustain_setups: Sequence[str] = ("up",)  # the setups that get it


class Running:
    """The processes of one setup, the database they write, and the CPU groups to watch."""

    def __init__(self, setup: Setup, options: Options, broker: EmbeddedBroker | None) -> None:
        self.setup = setup
        self.options = options
        self.broker = broker
        self.folder = options.folder / setup.name
        self.processes: list[ServiceProcess] = []
        self.intake_url = ""

    async def start(self) -> None:
        if self.setup.database == "none":
            self.processes = [CeilingProcess("ceiling", dict(os.environ), self.folder / "c.log")]
        elif self.setup.all_in_one:
            data = self.folder / "var"
            env = common.service_env({"data_dir": str(data), "quiet_hours": ""})
            self.processes = [ServiceProcess("up", env, self.folder / "motcua-up.log")]
            self.intake_url = common.sqlite_url(data, "intake")
        else:
            assert self.broker is not None
            if self.setup.database == "sqlite":
                urls = await common.fresh_sqlite(self.folder / "db", ["intake"])
                self.intake_url = urls["intake"]
            else:
                await common.fresh_postgres(self.options.database_url, ["intake"])
                self.intake_url = self.options.database_url
            env = common.service_env(
                {
                    "data_dir": str(self.folder / "var"),
                    "intake_database_url": self.intake_url,
                    "kafka_bootstrap": self.broker.bootstrap,
                }
            )
            self.processes = [
                ServiceProcess("intake", env, self.folder / f"intake-{i}.log")
                for i in range(self.setup.replicas)
            ]
        await common.start_services(self.processes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def cpu_groups(self) -> dict[str, Sequence[int] | str]:
        broker = [self.broker.pid] if self.broker and self.broker.pid else []
        services = list(self.pids)
        if self.setup.all_in_one:
            # `motcua up` starts the broker and, on two cores, a second Python process (the
            # tracker and the notifier): that one counts with the services.
            for pid in self.pids:
                second, started = common.started_by_up(pid)
                services += second
                broker += started
        return {
            "intake": services,
            "generator": [os.getpid()],
            "postgres": "postgres",
            "broker": broker,
        }

    async def backlog(self) -> int:
        if self.setup.database == "none":
            return 0
        return await common.count_rows(self.intake_url, t.outbox, t.outbox.c.published_at.is_(None))

    def clerks(
        self, concurrency: int, tokens: dict[str, str], bodies: dict[str, list[bytes]]
    ) -> list[Clerk]:
        """Clerks spread over the setup's processes."""
        return common.seat_clerks([p.port for p in self.processes], concurrency, tokens, bodies)

    def stop(self) -> list[int | None]:
        return common.stop_services(self.processes)


async def measure_level(running: Running, clerks: Sequence[Clerk], seconds: float) -> LevelResult:
    before = CpuSnapshot.take()
    result = await drive(clerks, seconds)
    result.cpu = common.cpu_between(before, CpuSnapshot.take(), running.cpu_groups())
    result.backlog = await running.backlog()
    return result


async def run_setup(
    setup: Setup, options: Options, broker: EmbeddedBroker | None, say: Callable[[str], None]
) -> SetupResult:
    result = SetupResult(setup)
    running = Running(setup, options, broker)
    say(f"{setup.name}: starting {setup.title}")
    try:
        await running.start()  # in the try: a process that never got ready is stopped too
        result.ports = [p.port for p in running.processes]
        ceiling = setup.database == "none"
        if ceiling:  # nothing checks a token there
            tokens = dict.fromkeys(AGENCIES, "mc_ceiling")
        else:
            tokens = await common.open_office(running.intake_url, running.processes[0].port)
        bodies = bodies_by_agency()
        top = max(options.levels)
        if options.warm_up > 0:
            clerks = running.clerks(top, tokens, bodies)
            result.warm_up = await drive(clerks, options.warm_up)
            common.close_clerks(clerks)
        for level in options.levels:
            clerks = running.clerks(level, tokens, bodies)
            measured = await measure_level(running, clerks, options.duration)
            common.close_clerks(clerks)
            result.levels.append(measured)
            say(f"{setup.name}: {_level_line(measured)}")
        if options.profile:
            clerks = running.clerks(top, tokens, bodies)
            # `motcua up`'s second process (tracker and notifier) is sampled too.
            services = running.cpu_groups()["intake"]
            assert not isinstance(services, str)
            recorder = Recorder(list(services), options.duration, running.folder)
            result.profile_level = await drive(clerks, options.duration)
            common.close_clerks(clerks)
            result.profile = await recorder.result()
            say(f"{setup.name}: profiled {_level_line(result.profile_level)}")
        if options.sustain > 0 and setup.name in options.sustain_setups:
            caught_up = await _caught_up(running, CATCH_UP_TIMEOUT)
            result.sustain = await sustain(
                running, tokens, bodies, options.sustain_rate, options.sustain
            )
            result.sustain.caught_up = caught_up
            say(f"{setup.name}: {_sustain_line(result.sustain)}")
        result.backlog_after = await _drained(running, options.drain_timeout)
        runs = [result.warm_up, *result.levels, result.profile_level]
        result.posted = sum(r.created for r in runs if r is not None)
        result.posted += result.sustain.created if result.sustain else 0
        result.dossiers = (
            result.posted if ceiling else await common.count_rows(running.intake_url, t.dossiers)
        )
    finally:
        result.exit_codes = running.stop()
    return result


# -- memory under sustained load ----------------------------------------------------------


@dataclass(frozen=True)
class RssTrend:
    """One process's resident memory over a sustained run, from samples a second apart."""

    samples: list[tuple[float, int]]  # (seconds since the load began, KiB)

    def at(self, seconds: float) -> int:
        """The first sample at or after `seconds` (the last one if none)."""
        return next((kib for t, kib in self.samples if t >= seconds), self.samples[-1][1])

    @property
    def start(self) -> int:
        return self.samples[0][1]

    @property
    def end(self) -> int:
        return self.samples[-1][1]

    @property
    def most(self) -> int:
        return max(kib for _, kib in self.samples)

    def window(self) -> list[tuple[float, int]]:
        """The samples of the last TREND_WINDOW seconds, none of the first SETTLE."""
        since = max(SETTLE, self.samples[-1][0] - TREND_WINDOW)
        return [(t, kib) for t, kib in self.samples if t >= since]

    def window_seconds(self) -> float:
        window = self.window()
        return window[-1][0] - window[0][0] if len(window) > 1 else 0.0

    def slope(self) -> float:
        """Least-squares slope over the window, in MiB a minute (NaN: too few samples)."""
        window = self.window()
        if len(window) < 3:
            return float("nan")
        mean_t = sum(t for t, _ in window) / len(window)
        mean_kib = sum(kib for _, kib in window) / len(window)
        spread = sum((t - mean_t) ** 2 for t, _ in window)
        kib_per_s = sum((t - mean_t) * (kib - mean_kib) for t, kib in window) / spread
        return kib_per_s * 60 / 1024

    def growth(self) -> float:
        """MiB gained over the window, along the fitted line."""
        return self.slope() * self.window_seconds() / 60

    def flat(self) -> bool:
        return self.growth() <= FLAT_MIB


@dataclass(kw_only=True)
class SustainResult(Answers):
    """An open-loop run at a fixed offered rate, with the service processes' RSS sampled;
    its latencies are counted from when each request was due."""

    rate: float  # dossiers/s offered
    seconds: float  # the offered period: from the first request due to the end of the last
    in_period: int  # 201s answered within it (the open requests answered after it are not)
    due: int  # requests due over the run
    not_sent: int  # due while SUSTAIN_IN_FLIGHT requests were open: not sent at all
    rss: dict[str, RssTrend]  # by process ("intake", "intake-1", "motcua up", …)
    # Records the setup's consumer groups had yet to read, summed over the processes'
    # /metrics (`motcua up`'s includes its second process's), read every LAG_EVERY s: a
    # consumer behind holds full batches and fetch buffers, which the RSS shows.
    lag: list[tuple[float, int]] = field(default_factory=list)
    cpu: CpuShares | None = None
    # Before the run: seconds until the consumers had read every record of the levels
    # (`_caught_up`), and the records left unread if they had not within the wait.
    caught_up: tuple[float, int | None] = (0.0, None)

    @property
    def most_lag(self) -> int | None:
        return max((records for _, records in self.lag), default=None)

    @property
    def end_lag(self) -> int | None:
        return self.lag[-1][1] if self.lag else None

    @property
    def carried(self) -> float:
        """201s a second within the offered period."""
        return self.in_period / self.seconds if self.seconds else 0.0

    def flat(self) -> bool:
        return all(trend.flat() for trend in self.rss.values())


async def sustain(
    running: Running,
    tokens: dict[str, str],
    bodies: dict[str, list[bytes]],
    rate: float,
    seconds: float,
) -> SustainResult:
    """Post dossiers at `rate` a second for `seconds` (request *n* due at start + n / rate,
    whatever happened to the others; at most SUSTAIN_IN_FLIGHT open, a request due beyond that
    is counted as not sent), sampling each service process's VmRSS every RSS_EVERY s until
    the period is over; then the open requests are answered, out of the figures' period."""
    processes = running.processes
    labels = [
        ("motcua up" if p.command == "up" else p.command) + (f"-{i}" if len(processes) > 1 else "")
        for i, p in enumerate(processes)
    ]
    auth = {agency: common.bearer(token) for agency, token in tokens.items()}
    idle: dict[int, list[HttpConnection]] = {p.port: [] for p in processes}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    samples: dict[str, list[tuple[float, int]]] = {label: [] for label in labels}
    clock = time.perf_counter
    open_requests = 0
    total = int(rate * seconds)
    done = asyncio.Event()
    answered: list[float] = []  # when each 201 came, since the start

    async def post(port: int, agency: str, body: bytes, due: float) -> None:
        nonlocal open_requests
        conn = idle[port].pop() if idle[port] else HttpConnection(port)
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, _ = await conn.request("POST", "/dossiers", body, auth[agency])
        except TRANSPORT_ERRORS as exc:
            failures[type(exc).__name__] += 1
        else:
            statuses[status] += 1
            if status == 201:
                latencies.append(clock() - due)
                answered.append(clock() - start)
            idle[port].append(conn)
        finally:
            open_requests -= 1

    def sample(at: float) -> None:
        for label, process in zip(labels, processes, strict=True):
            kib = common.rss_kib(process.pid)
            if kib is not None:
                samples[label].append((at, kib))
            if process.command != "up":
                continue
            # `motcua up`'s second process (the tracker and the notifier), when it has one
            for pid in common.started_by_up(process.pid)[0]:
                kib = common.rss_kib(pid)
                if kib is not None:
                    samples.setdefault(f"{label} (second process)", []).append((at, kib))

    lag: list[tuple[float, int]] = []

    async def read_lag(at: float) -> None:
        records = await setup_lag(processes)
        if records is not None:
            lag.append((at, records))

    start = clock()

    async def sampler() -> None:
        tick = 0
        while not done.is_set():
            sample(clock() - start)
            if tick % LAG_EVERY == 0:
                await read_lag(clock() - start)
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), max(start + tick * RSS_EVERY - clock(), 0))
        sample(clock() - start)
        await read_lag(clock() - start)

    before = CpuSnapshot.take()
    sampling = asyncio.create_task(sampler())
    tasks: set[asyncio.Task[None]] = set()
    sent = not_sent = 0
    while sent + not_sent < total:
        due_now = min(total, int((clock() - start) * rate) + 1)
        for n in range(sent + not_sent, due_now):
            if open_requests >= SUSTAIN_IN_FLIGHT:
                not_sent += 1
                continue
            agency = AGENCIES[n % len(AGENCIES)]
            port = processes[n % len(processes)].port
            body = bodies[agency][(n // len(AGENCIES)) % len(bodies[agency])]
            open_requests += 1
            task = asyncio.create_task(post(port, agency, body, start + n / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.sleep(max(start + (sent + not_sent) / rate - clock(), 0))
    await asyncio.sleep(max(start + seconds - clock(), 0))  # the last one's share of the period
    period = clock() - start
    done.set()
    await sampling
    cpu = common.cpu_between(before, CpuSnapshot.take(), running.cpu_groups())
    await asyncio.gather(*tasks)  # the requests still open: answered, stored, counted
    for conns in idle.values():
        for conn in conns:
            conn.close()
    return SustainResult(
        rate=rate,
        seconds=period,
        in_period=sum(1 for at in answered if at <= period),
        due=total,
        not_sent=not_sent,
        latencies=latencies,
        statuses=statuses,
        failures=failures,
        rss={label: RssTrend(found) for label, found in samples.items() if found},
        lag=lag,
        cpu=cpu,
    )


async def consumer_lag(port: int) -> int | None:
    """The records a service's consumer groups have yet to read (`motcua_consumer_lag_records`
    summed over its topics and partitions); None when it exposes no such series."""
    with contextlib.suppress(*TRANSPORT_ERRORS, TimeoutError):
        status, body = await common.get_once(port, "/metrics")
        if status == 200:
            # read as Prometheus reads it, like `motcua up` reads its second process's
            values = [
                sample.value
                for family in text_string_to_metric_families(body.decode())
                for sample in family.samples
                if sample.name == LAG_SERIES
            ]
            return round(sum(values)) if values else None
    return None


async def setup_lag(processes: Sequence[ServiceProcess]) -> int | None:
    """`consumer_lag` summed over the setup's processes; None when none reports it."""
    found = [await consumer_lag(process.port) for process in processes]
    return None if all(f is None for f in found) else sum(f or 0 for f in found)


def _sustain_line(r: SustainResult) -> str:
    trends = "; ".join(
        f"{label} RSS {mib(trend.start)} → {mib(trend.at(SETTLE))} at {SETTLE:g} s → "
        f"{mib(trend.end)} (max {mib(trend.most)}), {trend.slope():+.2f} MiB/min over the last "
        f"{trend.window_seconds():.0f} s: {'flat' if trend.flat() else 'growing'}"
        for label, trend in r.rss.items()
    )
    return (
        f"sustained {r.rate:,.0f}/s offered for {r.seconds:.0f} s: {r.carried:,.1f}/s carried, "
        f"{r.not_sent:,} not sent, errors {r.error_text()}, p99 {ms(r.p(0.99))}; "
        f"consumer lag {_lag_text(r)} (before: {_caught_up_text(r)}); {trends}"
    )


def _caught_up_text(r: SustainResult) -> str:
    seconds, left = r.caught_up
    if left is None:
        return "no lag reported"
    if left:
        return f"{left:,} records still unread after {seconds:.0f} s"
    return f"caught up with the levels' records in {seconds:.0f} s"


def _lag_text(r: SustainResult) -> str:
    if r.most_lag is None:
        return "—"
    return f"{r.most_lag:,} at most, {r.end_lag:,} at the end"


async def _caught_up(running: Running, within: float) -> tuple[float, int | None]:
    """Wait until the setup's consumers have read every record (their lag 0 at two reads in
    a row), so that the sustained run measures 1,000/s and not the levels' backlog too: at
    32-64 clerks the intake takes dossiers faster than `up`'s tracker and notifier apply
    them. The seconds it took, and the records still unread (None: no lag is reported)."""
    start = time.monotonic()
    last: list[int | None] = [None, None]

    async def read() -> int | None:
        last[:] = [last[1], await setup_lag(running.processes)]
        return last[1]

    # polling the lag every second until two reads in a row are zero
    await common.poll(read, lambda _: last == [0, 0] or last[1] is None, within, 1.0)
    return time.monotonic() - start, last[1]


async def _drained(running: Running, within: float) -> int:
    """Wait for the outbox relay to publish every row; the rows left after `within` s."""
    # polling the outbox every 0.5 s while the relay catches up
    return await common.poll(running.backlog, lambda left: not left, within, 0.5)


def _level_line(level: LevelResult) -> str:
    return (
        f"{level.concurrency:>3} clerks: {level.rate:7.1f} dossiers/s, p50 {ms(level.p(0.5))}, "
        f"p99 {ms(level.p(0.99))}, max {ms(max(level.latencies, default=float('nan')))}, "
        f"errors {level.error_text()}; CPU {level.cpu.describe() if level.cpu else '?'}; "
        f"written a dossier: intake {level.kb_written('intake'):.1f} KB, "
        f"PostgreSQL {level.kb_written('postgres'):.1f} KB"
    )


# -- the whole run --------------------------------------------------------------------------


@dataclass
class Run:
    setups: list[SetupResult]
    options: Options
    load_average: tuple[float, float]
    costs: RoundTripCosts | None = None
    ceiling: Ceiling | None = None  # measured at the start of the run


async def run(
    setups: Sequence[Setup], options: Options, say: Callable[[str], None] = lambda _: None
) -> Run:
    load_at_start = common.load_average()
    common.check_phones()
    ceiling = await common.measure_ceiling(options.ceiling_seconds, warm_up=options.ceiling_warm_up)
    say(ceiling.line())
    if any(s.database == "postgres" for s in setups):
        await common.ensure_database(options.database_url)
    results = []
    for setup in setups:
        # A broker of each setup's own, so that no setup joins a consumer group another's
        # intakes just left: on the bundled broker such a join hung for over 90 s (twice in
        # eight runs of postgres, postgres-x2, sqlite on 2026-12-03 and 04, the sqlite
        # intake's subscriber never joined after the two intakes before it had left).
        broker: EmbeddedBroker | None = None
        if not setup.all_in_one and setup.database != "none":
            broker = await common.start_broker(options.folder / setup.name)
        try:
            results.append(await run_setup(setup, options, broker, say))
        finally:
            if broker is not None:
                await broker.stop()
    costs = None
    if any(s.database == "postgres" for s in setups):
        costs = await round_trip_costs(options.database_url, options.cost_repeats)
    return Run(results, options, (load_at_start, common.load_average()), costs, ceiling)


# -- what one round trip to PostgreSQL costs in Python ----------------------------------------


@dataclass(frozen=True)
class RoundTripCosts:
    """CPU of the calling thread, in microseconds, for one primary-key SELECT of a
    procedure: by asyncpg alone, through SQLAlchemy Core on one connection (what each
    statement of a request costs), and in a transaction of its own as the intake opens them
    (pool checkout, BEGIN, the SELECT, COMMIT)."""

    asyncpg: float
    sqlalchemy: float
    transaction: float
    repeats: int


async def round_trip_costs(url: str, repeats: int = 1000) -> RoundTripCosts:
    code = PROCEDURES[0].code
    query = sa.select(t.procedures).where(t.procedures.c.code == code)
    raw = await asyncpg.connect(common.asyncpg_dsn(url), timeout=common.CONNECT_TIMEOUT)
    engine = create_engine(url)  # as the intake makes it: pool of 10
    try:

        async def by_asyncpg() -> None:
            await raw.fetchrow("SELECT * FROM intake_procedures WHERE code = $1", code)

        async with engine.connect() as conn:

            async def by_sqlalchemy() -> None:
                (await conn.execute(query)).first()

            sqlalchemy_us = await _cpu_us(by_sqlalchemy, repeats)

        async def in_transaction() -> None:
            async with engine.begin() as conn:
                (await conn.execute(query)).first()

        return RoundTripCosts(
            asyncpg=await _cpu_us(by_asyncpg, repeats),
            sqlalchemy=sqlalchemy_us,
            transaction=await _cpu_us(in_transaction, repeats),
            repeats=repeats,
        )
    finally:
        await raw.close()
        await engine.dispose()


async def _cpu_us(step: Callable[[], Awaitable[None]], repeats: int) -> float:
    for _ in range(min(repeats, 100)):  # statements prepared, pool filled
        await step()
    started = time.thread_time()
    for _ in range(repeats):
        await step()
    return (time.thread_time() - started) / repeats * 1e6


def problems(result: Run) -> list[str]:
    """What makes the figures unusable: failed requests, lost dossiers, a dirty stop."""
    found = result.ceiling.problems() if result.ceiling else []
    for s in result.setups:
        name = s.setup.name
        for level in s.levels:
            if level.errors:
                found.append(f"{name}, {level.concurrency} clerks: errors {level.error_text()}")
            if not level.created:
                found.append(f"{name}, {level.concurrency} clerks: no dossier created")
        if s.dossiers != s.posted:
            found.append(f"{name}: {s.posted} answered 201 but {s.dossiers} dossiers stored")
        if s.backlog_after:
            found.append(f"{name}: {s.backlog_after} outbox rows never published")
        if s.sustain is not None and s.sustain.errors:
            found.append(f"{name}, sustained load: errors {s.sustain.error_text()}")
        if s.sustain is not None and not s.sustain.rss:
            found.append(f"{name}, sustained load: no RSS sample")
        if any(code != 0 for code in s.exit_codes):
            found.append(f"{name}: exit codes {s.exit_codes}")
    return found


def in_target_range(s: SetupResult) -> list[LevelResult]:
    """The levels the setup's target is judged on (its range of clerks, if any)."""
    if s.setup.target_clerks is None:
        return list(s.levels)
    low, high = s.setup.target_clerks
    return [lv for lv in s.levels if low <= lv.concurrency <= high]


def setup_verdict(s: SetupResult) -> str:
    """Whether the setup met its own target (`Setup.target`), with the figures that say so."""
    judged = in_target_range(s)
    if not judged:
        return f"{s.setup.title}: not measured ({s.setup.target()} asked)"
    best = best_within(judged)
    if best is not None and best.rate >= s.setup.target_rate:
        return (
            f"{s.setup.title}: **met** ({s.setup.target()} asked): {best.rate:,.0f}/s at "
            f"{best.concurrency} clerks, p99 {ms(best.p(0.99))}"
        )
    top = max(judged, key=lambda lv: lv.rate)
    there = (
        f"best with p99 < 50 ms there {best.rate:,.0f}/s at {best.concurrency} clerks"
        if best
        else "p99 ≥ 50 ms at every such level"
    )
    return (
        f"{s.setup.title}: **missed** ({s.setup.target()} asked): {there}; most "
        f"{top.rate:,.0f}/s at {top.concurrency} clerks, p99 {ms(top.p(0.99))}"
    )


def best_within(levels: Sequence[LevelResult]) -> LevelResult | None:
    """The level with the most dossiers/s among those with p99 under the target."""
    within = [lv for lv in levels if lv.p(0.99) < TARGET_P99]
    return max(within, key=lambda lv: lv.rate, default=None)


def best_within_target(s: SetupResult) -> LevelResult | None:
    return best_within(s.levels)


# -- the README section ---------------------------------------------------------------------


def levels_table(s: SetupResult) -> str:
    lines = [
        "| Clerks | 201s | Errors | Dossiers/s | Slowest second | p50 | p90 | p99 | max "
        "| CPU intake | CPU generator | CPU PostgreSQL | CPU broker | CPU other | Machine busy "
        "| CPU ms a dossier: intake | … all four groups above | KB written a dossier: intake "
        "| … PostgreSQL | Outbox backlog |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for lv in s.levels:
        cpu = lv.cpu
        shares = (
            [f"{cpu.cores(g):.2f}" for g in ("intake", "generator", "postgres", "broker", "other")]
            if cpu
            else ["?"] * 5
        )
        machine = f"{cpu.machine:.2f} / {os.cpu_count()}" if cpu else "?"
        lines.append(
            f"| {lv.concurrency} | {lv.created:,} | {lv.error_text()} | **{lv.rate:,.0f}** "
            f"| {min(lv.per_second, default=0):,} | {ms(lv.p(0.5))} | {ms(lv.p(0.9))} "
            f"| **{ms(lv.p(0.99))}** | {ms(max(lv.latencies, default=float('nan')))} | "
            + " | ".join(shares)
            + f" | {machine} | {lv.cpu_ms('intake'):.1f} | {lv.cpu_ms(*OURS):.1f} "
            f"| {lv.kb_written('intake'):.1f} | {lv.kb_written('postgres'):.1f} "
            f"| {lv.backlog:,} |"
        )
    return "\n".join(lines)


def summary_table(result: Run) -> str:
    lines = [
        "| Setup | Best dossiers/s with p99 < 50 ms | at clerks | p99 there | Most dossiers/s "
        "| at clerks | p99 there | Most as a share of the ceiling |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in result.setups:
        best = best_within_target(s)
        top = max(s.levels, key=lambda lv: lv.rate)
        within = (
            f"**{best.rate:,.0f}** | {best.concurrency} | {ms(best.p(0.99))}"
            if best
            else "none | – | –"
        )
        share = f"{result.ceiling.share(top.rate):.0%}" if result.ceiling else "–"
        lines.append(
            f"| {s.setup.title} | {within} | {top.rate:,.0f} | {top.concurrency} "
            f"| {ms(top.p(0.99))} | {share} |"
        )
    if result.ceiling:
        lines += ["", result.ceiling.sentence()]
    return "\n".join(lines)


def sustain_table(result: Run) -> str:
    lines = [
        "| Setup | Process | Offered | Carried | Not sent | Errors | p50 | p99 "
        "| CPU service process(es) "
        "| CPU other | RSS at start | at 10 s | at the end | max | Slope over the window "
        "| Growth over the window | Memory | Consumer lag, records: most / at the end |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for s in result.setups:
        r = s.sustain
        if r is None:
            continue
        cpu = r.cpu
        for label, trend in r.rss.items():
            lines.append(
                f"| {s.setup.name} | {label} | {r.rate:,.0f}/s | **{r.carried:,.1f}/s** "
                f"| {r.not_sent:,} | {r.error_text()} | {ms(r.p(0.5))} | {ms(r.p(0.99))} "
                f"| {cpu.cores('intake') if cpu else float('nan'):.2f} "
                f"| {cpu.cores('other') if cpu else float('nan'):.2f} "
                f"| {mib(trend.start)} | {mib(trend.at(SETTLE))} | {mib(trend.end)} "
                f"| {mib(trend.most)} "
                f"| {trend.slope():+.2f} MiB/min "
                f"| {trend.growth():+.1f} MiB over {trend.window_seconds():.0f} s "
                f"| **{'flat' if trend.flat() else 'growing'}** "
                f"| {_lag_cell(r)} |"
            )
    return "\n".join(lines)


def _lag_cell(r: SustainResult) -> str:
    if r.most_lag is None:
        return "—"
    return f"{r.most_lag:,} / {r.end_lag:,}"


def _names(result: Run) -> str:
    return ", ".join(f"`{s.setup.name}`" for s in result.setups if s.sustain is not None)


def _memory_verdict(result: Run) -> str:
    sustained = [s for s in result.setups if s.sustain is not None]
    if not sustained:
        return ""
    flat = all(s.sustain.flat() for s in sustained if s.sustain)
    each = []
    for s in sustained:
        assert s.sustain is not None
        named = len(s.sustain.rss) > 1
        growth = ", ".join(
            f"{label + ' ' if named else ''}{trend.growth():+.1f} MiB over the last "
            f"{trend.window_seconds():.0f} s"
            for label, trend in s.sustain.rss.items()
        )
        each.append(
            f"`{s.setup.name}` {s.sustain.rate:,.0f}/s offered for {s.sustain.seconds:.0f} s, "
            f"{s.sustain.carried:,.0f}/s carried ({_caught_up_text(s.sustain)} before it): "
            f"RSS {growth}"
        )
    verdict = "flat" if flat else "growing"
    # Too short when the run could not fill the window, not when the sampler's ticks (late
    # on a loaded machine) made the last 50 s hold a window of 48.9 s.
    shortest = min(s.sustain.seconds for s in sustained if s.sustain)
    if shortest < SETTLE + TREND_WINDOW:
        verdict += (
            f" over a run of only {shortest:.0f} s, too short to call: `--sustain "
            f"{SETTLE + TREND_WINDOW:g}` or longer"
        )
    return (
        f"**Memory under sustained load: {verdict}** (flat: at most {FLAT_MIB:g} MiB of "
        f"growth along the line fitted to the samples of the last {TREND_WINDOW:g} s): "
        + "; ".join(each)
        + "."
    )


def section(
    result: Run,
    command: str,
    today: date,
    host: dict[str, str],
    pg: dict[str, str] | None,
    analysis: str = "",
) -> str:
    opts = result.options
    parts = [
        f"## {TITLE}",
        "",
        "Target: *≥ 1,000 dossiers/s sustained at p99 < 50 ms on the intake, on this 2-core "
        "machine; issue 12 asks it of `motcua up` with 32-64 clerks, and 1,500/s of the intake "
        "on PostgreSQL.*",
        "",
        "**Result.**",
        "",
        *(f"- {setup_verdict(s)}." for s in result.setups if s.setup.database != "none"),
        "",
        summary_table(result),
        "",
    ]
    if memory := _memory_verdict(result):
        parts += [memory, ""]
    parts += [
        common.date_line(today),
        common.machine_line(
            host,
            shared="the load generator, the service(s), PostgreSQL and the broker all share "
            "these cores",
        ),
        f"- {common.versions_line(host)}; SQLite {host['sqlite']}; broker {host['kafka']}",
    ]
    if pg:
        parts.append(
            common.postgres_line(
                pg, "shared_buffers", "synchronous_commit",
                note="every dossier's commit waits for its WAL flush",
            )
        )  # fmt: skip
    parts += [
        common.load_line(result.load_average),
        *common.command_lines(
            "starts the broker and the services, creates the database if missing, empties the "
            "intake's tables, measures, rewrites this section",
            command,
        ),
        "",
        "### Method",
        "",
        "- **The service** runs as in production, a process started with `python -m services.cli "
        "intake --port P` (uvicorn, one worker: the CLI has no worker option; uvloop and "
        "httptools; log level INFO, one JSON line per request to a file) with "
        "`MOTCUA_INTAKE_DATABASE_URL` and `MOTCUA_KAFKA_BOOTSTRAP` pointing at the bundled "
        "Kafka-protocol broker (Tansu, started as `motcua up` starts it, topics created with 3 "
        "partitions; a broker of each setup's own). `postgres-x2` runs two such processes on one "
        "database (the README's scaling: replicas behind a load balancer, the outbox relays taking"
        " turns on an advisory lock); the clerks' connections alternate between them. `up` is "
        "`motcua up` itself: the intake in the process started, the tracker and the notifier in "
        "the second process it starts (two cores: `MOTCUA_UP_PROCESSES` default), SQLite files "
        "with its own broker (SMS to `outbox/sms.jsonl`, `MOTCUA_QUIET_HOURS` empty so the "
        "notifier sends whatever the hour), so each dossier is also tracked and texted there.",
        f"- **Data.** {len(PROCEDURES)} procedures of {len(AGENCIES)} agencies (working days "
        "with and without a 15:00 cut-off, working hours, calendar days) created through "
        "`POST /procedures` with an admin token; one clerk token per agency (made as `motcua "
        "token create` makes them). Each body is a realistic applicant: Vietnamese name, a "
        "valid mobile number (distinct per dossier), a 12-digit CCCD, sometimes an e-mail; "
        "channel counter/online/postal 6:3:1; a quarter of those whose procedure allows it "
        f"ask for postal return with a Hồ Chí Minh City address. "
        f"{BODIES_PER_AGENCY:,} bodies per agency are encoded before the run and reused in turn.",
        f"- **Load.** At each level, that many clerks (clerk *i* works for agency *i* mod "
        f"{len(AGENCIES)}) post back to back, each on its own keep-alive connection, for "
        f"{opts.duration:g} s (closed loop: a clerk sends the next dossier when the last was "
        "answered). Latency is from writing the request to reading the whole answer. Only "
        "201s count in the throughput; any other status or a transport error is an error. "
        f"A {opts.warm_up:g} s warm-up at {max(opts.levels)} clerks (pool connections open, "
        "statements prepared) precedes the first level. *Slowest second*: the fewest 201s "
        "completed in any whole second of the level.",
        "- **The load generator** is this script, in its own process, with a minimal HTTP/1.1 "
        "client on asyncio streams (`bench/common/http.py`, `HttpConnection`; httpx costs several "
        "times more CPU a request) so that it takes as little of the two cores as possible; "
        "its own CPU is measured and shown (*CPU generator*).",
        "- **CPU** columns are cores used over the level (1.00 = one core all the time), from "
        "`/proc`: the intake process(es) (for `up`, its two processes: the three services), "
        "the generator, every process named `postgres`, the broker; *other* is the rest of "
        "the machine's busy time (other users of this shared machine included). *KB "
        "written a dossier*: what those processes had written to storage over the level "
        "(`write_bytes` of `/proc/PID/io`: pages dirtied for storage, SQLite's WAL and "
        "checkpoints among them; a page dirtied again before it was written back counts once), "
        "by the intake process(es) and by PostgreSQL. *Outbox "
        "backlog*: `dossier.received` rows not yet published to "
        "Kafka when the level ended (the relay runs in the intake process and competes for it).",
    ]
    if result.ceiling:
        parts.append(
            common.ceiling_method(result.ceiling, "each setup's most dossiers/s")
            + " What it pays for a request is HTTP and validation alone."
        )
    if any(s.setup.database == "none" for s in result.setups):
        parts.append(
            "- **Setup `ceiling`** runs the same endpoint through the levels like the "
            "setups (same warm-up, same table), to show how its rate and latency follow the "
            "concurrency."
        )
    sustained = next((s.sustain for s in result.setups if s.sustain), None)
    if sustained is not None:
        parts.append(
            f"- **Sustained load** (`--sustain`, for {_names(result)}): after the levels, "
            f"{sustained.seconds:.0f} s of dossiers offered at {sustained.rate:,.0f}/s, open "
            "loop: request *n* is due at "
            "start + *n* / rate whatever happened to the others, posted on a free keep-alive "
            f"connection; at most {SUSTAIN_IN_FLIGHT} are open at once, and one due while "
            f"{SUSTAIN_IN_FLIGHT} are open is not sent (*Not sent*), so the offered rate stays "
            "fixed and no backlog builds up in the generator. *Carried*: the 201s answered "
            "within the offered period, a second (the requests still open at its end are "
            "answered afterwards and counted as stored, outside the rate and the memory "
            "figures); latency is counted from when the request was due, so time queued in "
            "the service counts. Every second of the period the benchmark reads `VmRSS` from "
            "`/proc/<pid>/status` of each service process (for `up` the process started and "
            "its second process, each; the broker, its child, is not counted). *Slope*: the "
            f"least-squares line through the samples of the last {TREND_WINDOW:g} s (never "
            f"the first {SETTLE:g} s), in MiB a minute; *growth*: that line's rise over the "
            f"same samples; *flat* when it is at most {FLAT_MIB:g} MiB. Before the run the "
            "benchmark waits until the setup's consumers have read every record of the "
            f"levels (their lag 0 at two reads a second apart, for {CATCH_UP_TIMEOUT:g} s at "
            "most): at 32-64 clerks the intake takes dossiers faster than `up`'s second "
            "process applies them, and a run started on that backlog measured its catch-up "
            "too (on 2026-12-03: 11,736 records behind at most, the intake's process +16.8 "
            "MiB over the last 50 s, its read model applying the tracker's deadline events "
            "in full batches). *Consumer lag*: the "
            "records the setup's consumer groups had yet to read (`motcua_consumer_lag_records` "
            "from each service process's `/metrics`, summed; `motcua up`'s includes its second "
            f"process's), read every {LAG_EVERY * RSS_EVERY:g} s: a consumer that falls behind "
            "works on full batches with its fetch buffers full, and the RSS rises with that "
            "working set (measured on 2026-12-03 with a busy loop beside `up` at 1,000/s: "
            "lags of 1,000-6,000 records and 5-25 MiB a minute in both processes, where the "
            "same run without it kept up and stayed flat). The bound is above "
            "the fill of a bounded cache (one SQLite connection keeps up to 2 MiB of pages by "
            "default; the bare ceiling app, driven this way for 60 s on 2026-12-02, gained "
            "3.9 MiB in its first 30 s and nothing after) and well below what a leak of "
            "1 KiB a dossier would give "
            f"at {TARGET_RATE:,} dossiers/s (about 49 MiB in 50 s). At a low carried rate a "
            "cache still filling can pass it (`up` has a SQLite connection per service "
            "database): a longer run (`--sustain 300`) tells the two apart, its window being "
            "its last 50 s. Run so on 2026-12-02 (600/s offered, 548/s carried on a busy "
            "machine), the intake's process went 155 → 168 MiB and the second one 180 → 221 "
            "MiB, both slowing down (2.1 and 3.5 MiB a minute over the last 50 s, flat by the "
            "bound). Python's own allocations, traced with tracemalloc over 150 s at 250/s, "
            "one process at a time, stayed at 124.5-126.7 MB in the second process and "
            "116.8-118.5 MB in the intake's over the last 90 s, the differences being "
            "batches in flight (Kafka fetch buffers, envelopes being decoded), and in the "
            "second process the embedded SMS file's index of every request id written "
            "(+2.2 MB, about 100 bytes a text): since bounded to its last 10,000 keys "
            "(`notifier.adapters.jsonl_outbox`). The rest of the growth was outside "
            "Python's objects. Sampled inside the processes every 2 s on 2026-12-03 at "
            "1,000/s (glibc's `mallinfo2`, SQLite's `sqlite3_memory_used`): in the second "
            "process SQLite's own memory climbed in steps from 16 to 37 MiB in 150 s as "
            "batches of new sizes came, and the process from 171 to 241 MiB in 300 s. A "
            "batch's `IN (...)` and multi-row VALUES have a parameter a record, so each batch "
            "size is a statement text of its own, and sqlite3 kept the 128 last used "
            "prepared (about 60 KiB for one of 250 ids). Keeping 32 "
            "(`core.runtime.sqlite_inline`), SQLite's memory stayed at 6-14 MiB in the same "
            "run and the process's RSS went down again after its peak (211 MiB, 198 MiB at "
            "the end of 150 s). What moves after that is the allocator's free space inside "
            "its heap (4-22 MiB: memory freed after one batch and kept for the next). The "
            "heap keeps the high-water mark of a burst, so within 60 s a process's RSS may "
            "step up a few MiB once and stay there, which the line fitted to 50 s reads as "
            "growth; over 120 s at 1,000/s offered on 2026-12-03 (`--sustain 120`) both "
            "processes were flat (+0.7 and -2.1 MiB over the last 50 s)."
        )
    parts += [
        "- **Checked:** no errors at any level; every 201 is a stored dossier (count at the "
        "end, warm-up, profiled run and sustained load included); the outbox drains (every "
        "event reached the broker); every process stops with status 0.",
    ]
    if any(s.profile for s in result.setups):
        parts.append(
            "- **Profile.** One more run at the highest level per setup, sampled by py-spy "
            "(`record --rate 200 --nonblocking --threads`, from outside the process, which is "
            "not changed). Each sample goes to the category of its deepest frame in a known "
            "package (anyio's frames count for their caller: Starlette's middleware or "
            "httpcore); *Inside* counts a sample when the function is anywhere on its stack. "
            "py-spy samples a thread whenever it is runnable, on a core or waiting for one, so "
            "the shares are of the time the process wanted a core. The profiled run's own "
            "throughput is shown; sampling slows it a little."
        )
    parts += ["", "### Figures", ""]
    for s in result.setups:
        parts += [f"#### {s.setup.title}", "", levels_table(s), ""]
        parts.append(
            f"Stored dossiers at the end: {s.dossiers:,} (201s over the run: {s.posted:,}); "
            f"outbox rows left unpublished: {s.backlog_after}; exit status "
            f"{', '.join(str(c) for c in s.exit_codes)}."
        )
        parts.append("")
    if sustained is not None:
        parts += ["### Memory under sustained load", "", sustain_table(result), ""]
    if analysis:
        parts += ["### What limits it", "", analysis.strip(), ""]
    profiled = [s for s in result.setups if s.profile and s.profile_level]
    if profiled:
        parts += ["### Profiles", ""]
        for s in profiled:
            assert s.profile and s.profile_level
            lv = s.profile_level
            parts += [
                f"#### {s.setup.title}, {lv.concurrency} clerks",
                "",
                f"Profiled run: {lv.rate:,.0f} dossiers/s, p50 {ms(lv.p(0.5))}, p99 "
                f"{ms(lv.p(0.99))}; {s.profile.samples:,} samples over {s.profile.seconds:g} "
                f"s (threads active {s.profile.busy():.0%} of the time).",
                "",
                profile_tables(s.profile),
                "",
            ]
    return "\n".join(parts)


# -- what limits it ------------------------------------------------------------------------

# Profile categories grouped into what a reader can act on.
DATABASE = ("asyncpg (PostgreSQL driver)", "aiosqlite + sqlite3 (SQLite driver)",
            "SQLAlchemy (Core, pool, dialects)", WAITING)  # fmt: skip
HTTP = (
    "FastAPI + Starlette (routing, dependencies)",
    "Starlette BaseHTTPMiddleware (the request-log middleware)",
    "uvicorn + httptools (HTTP server)",
)
PYDANTIC = ("pydantic: validation and serialisation", "JSON encoding and decoding")


def _share(profile: Profile, names: Sequence[str]) -> float:
    return sum(profile.by_category.get(n, 0) for n in names) / max(profile.samples, 1)


def _top(s: SetupResult) -> LevelResult:
    return max(s.levels, key=lambda lv: lv.concurrency)


def analysis(result: Run) -> str:
    """What limits the intake, from this run's figures (CPU per dossier, profiles)."""
    if not result.setups or not all(s.levels for s in result.setups):
        return ""
    swept = next((s for s in result.setups if s.setup.database == "none"), None)
    result = dataclasses.replace(
        result, setups=[s for s in result.setups if s.setup.database != "none"]
    )
    if not result.setups:
        return ""
    parts = [_shared_paragraph(result), _cpu_paragraph(result)]
    if result.ceiling is not None:
        parts.append(_ceiling_paragraph(result, result.ceiling, swept))
    profiled = [s for s in result.setups if s.profile]
    for s in profiled:
        parts.append(_profile_paragraph(s))
    if result.costs:
        parts.append(_round_trip_paragraph(result.costs))
    parts += [
        _latency_paragraph(result),
        "**SQLite** (`sqlite`, `up`) has one writer: every transaction, reads included, starts "
        "with `BEGIN IMMEDIATE` and takes the database's write lock. Each SQLite engine has "
        "one pooled connection (`pool_size=1, max_overflow=0`, `core.runtime.database`), so "
        "concurrent requests queue for it in order. Before, up to 15 pooled connections each "
        "opened a transaction and all but one waited in SQLite's busy handler, which sleeps "
        "and retries with growing pauses (up to 100 ms each). Measured on this machine on "
        "2026-11-22 with nothing else running, `up` at 1/4/16/64 clerks: p99 112/1,073/"
        "4,432/5,606 ms with the old pool, 68/192/588/2,009 ms with one connection, at the "
        "same throughput (one core is the limit); `sqlite` at 4 clerks: p99 343 ms before, "
        "under 50 ms after. The statements run in place on the event loop's thread "
        "(`core.runtime.sqlite_inline`), not on aiosqlite's thread with a hand-over each way. "
        "`up` runs on uvloop, the intake in its first process and the tracker and the "
        "notifier in a second one (each service on its own SQLite file), so each dossier's "
        "CPU is spent in two processes, one core each at most.",
        "**Group commit** (issue 12, `services/core/runtime/group_commit.py`): POST "
        "/dossiers no longer opens a transaction of its own. The request is checked first "
        "(the procedure and its agency come from a catalogue cached in the process for 5 s "
        "and forgotten when this intake changes it; a receipt in the future), then queued; "
        "one worker takes whatever has queued, runs each request's unit in one transaction "
        "(the idempotency key's lookup and insert when the header is sent; the day's code, "
        "taken from as many numbers of each agency's counter as the batch has receipts of "
        "it, claimed and locked in one upsert for all the batch's counters, a counter written "
        "again only when its receipts used fewer), inserts the batch's dossiers and outbox "
        "rows with one statement per table (built once: building a statement cost about "
        "twice what running it did, 64 against 35 µs on SQLite), commits once and wakes the "
        "relay once. A receipt alone in its batch cost 1.74-1.76 ms of CPU in-process on "
        "SQLite before those two changes (measured alternately on 2026-12-03), 1.27-1.49 ms "
        "after. A unit that fails sends the "
        "batch round again with a SAVEPOINT per "
        "request, so only that request gets its error; a failed COMMIT fails every request "
        "of the batch (503) and writes nothing. `pool_pre_ping` is gone (a round trip per "
        "transaction): a dropped connection fails with a transient error, answered 503. "
        "Earlier: the intake's `context` dependency was made `async` (it ran in a worker "
        "thread), 8.6 → 7.6 ms of CPU a POST in-process.",
        "The request log and duration histogram became a plain ASGI middleware "
        "(`core.runtime.host.ObserveRequests`; Starlette's `BaseHTTPMiddleware` ran each "
        "request in an extra task with a memory stream, 12 % of the samples under load), and "
        "the handler sends its already dumped answer instead of validating it against the "
        "response model again.",
        "**POST /dossiers without FastAPI on its common path** (`services/intake/api/"
        "fast_receipt.py`): a route first in the router answers an ordinary receipt (JSON, a "
        "clerk's token, a valid body) through the same function as the FastAPI route, and "
        "hands anything else to that route with the body replayed, so errors and the OpenAPI "
        "description stay in one place. FastAPI's route lookup among included routers and "
        "its dependency solving were about a fifth of the intake's samples; measured "
        "alternately on 2026-12-02 on a busy machine, the intake alone on SQLite went from "
        "790-1,030 / 998-1,000 to 1,126-1,560 / 1,338-1,702 dossiers/s at 16 / 64 clerks. "
        "The day's counters are read with a statement SQLAlchemy caches (a multi-row VALUES "
        "was compiled again for every batch), and motcua's log lines skip stdlib logging "
        "(32 → 22 µs a line; a dossier makes five across the services) and, for a value "
        "without a digit or an '@' or that is one UUID, the redaction's scan for phones, "
        "CCCDs and e-mails (31 → 19 µs a line, 2026-12-03, a slower machine).",
        "**The p99 at 32-64 clerks** was, until 2026-12-03, two waits of the event loop "
        "rather than its throughput. (1) At each bearer token's 1 s expiry every request of "
        "that clerk in flight looked it up again, each queueing for the one SQLite "
        "connection behind the batches: the token check took up to 1.3 s (p99 257 ms) in "
        "`up` at 64 clerks. Now a key is read once at a time and, in the last quarter of its "
        "second, read again in the background while still served "
        "(`core.runtime.read_cache`; the catalogue cache too): p99 0.3-26 ms. (2) A full "
        "pass of CPython's cyclic garbage collector walked the few hundred thousand objects "
        "a started service holds with the loop stopped, up to 185 ms, 12 times in 25 s (1.9 "
        "s in all); the served processes now freeze what exists once they have started "
        "(`core.runtime.heap`): full passes at most 16 ms, 0.18 s in all. Measured on "
        "2026-12-03 (a slow day: ceiling 5,010 req/s) with both, p99 at 64 clerks: `up` "
        "171 ms, `sqlite` 78 ms, `postgres` 76 ms; without them, earlier the same night, "
        "`up` 570 ms and `postgres` 247 ms.",
        "**The intake's consumer takes at most 50 records at once** "
        "(`services/intake/app.py`, `CONSUMER_BATCH`; the tracker and the notifier take up "
        "to 500): the tracker's deadline events, one or more a dossier, reach the intake's "
        "read model in batches applied on the event loop without a pause, and at 500 a "
        "batch held the loop for tens of milliseconds several times a second (asyncio's "
        "debug mode named the consumer's task among the slow steps); the receipts waiting "
        "behind it made the p99. Alternate runs of `up` at 32 clerks on 2026-12-03 evening, "
        "before the recording above: 1,126-1,476/s at p99 37-48 ms with 50 (six runs), against "
        "1,107-1,458/s at p99 45-69 ms with 500. Taking 64 in every service's consumer "
        "instead lowered the throughput (more transactions in the second process).",
        "**Time-ordered ids** (`services/core/ids.py`): a dossier's and an event's id are "
        "UUID version 7, starting with the millisecond of the injected clock. A random id "
        "fell on a random leaf of every index on it (the intake's dossiers and outbox, the "
        "tracker's dossiers and processed events, the notifier's dossiers and notices), so a "
        "batch of thirty receipts dirtied about thirty leaf pages per index, each written "
        "whole to the WAL and copied back at the checkpoint. Measured in `up` at 32 clerks "
        "on 2026-12-03, profiles and `/proc/PID/io` of alternate runs: the tracker and "
        "notifier's process spent 13 % of its samples in SQLite against 20-22 % with random "
        "ids and wrote 15-16 KB a dossier against 24-30 KB; the intake 10 % against 11-14 %. "
        "The rates of those runs differed less than the machine's drift from run to run.",
        "**The WAL checkpointed off the event loop** (`core.runtime.wal_checkpoint`): the "
        "commit that took SQLite's WAL past 1,000 pages copied them back into the database "
        "file and waited for the disk on the loop's thread: in `up` at 32 clerks, 86 of the "
        "intake's 1,088 commits of a run took over 5 ms (up to 17 ms, 0.9 s in all), and 51-56 "
        "of the second process's. A thread of each process now checkpoints each file 0.2 s "
        "after a commit, on a connection of its own, while the loop goes on (sqlite3 lets go "
        "of the GIL meanwhile); a commit checkpoints in place only past 10,000 pages, as a "
        "backstop. Measured on 2026-12-03, alternate runs of 20 s: 0-2 of the intake's "
        "commits over 5 ms, 1,037-1,202 dossiers/s at p99 64-72 ms against 943-952 at p99 "
        "84-105.",
        "**A larger young generation** (`core.runtime.heap`): CPython's collector ran a "
        "young pass each time 700 more objects had been made than freed, every few "
        "milliseconds under load; each found the requests of the batch in progress alive and "
        "promoted their objects, until the old generation had grown by a quarter and a full "
        "pass ran (19-22 in a 20 s run of the intake, 10-30 ms each). With a threshold of "
        "20,000 the young pass comes once those requests are answered. Alternate runs on "
        "2026-12-03 afternoon: the intake process 0.1 s in the collector against 1.5 s, no "
        "full pass under load, the second process 0.6-0.8 s against 1.9-2.2 s; 955-1,193 "
        "dossiers/s at p99 58-62 ms against 840-1,009 at p99 81-87.",
        "**Before and after, same command, 2026-12-02, minutes apart, little other load in "
        "either** (before: commit 9ae6f89, the services as on main, with the bench code of "
        "this run, no profile): `up` 11/21/21/24 dossiers/s at 1/4/16/64 clerks, p99 270/242/"
        "812/3,106 ms, 40 ms of the process's CPU a dossier at 64 clerks; `sqlite` 57/65/67/"
        "63, p99 39/213/300/1,205 ms, 14.4 ms; `postgres` 68/111/135/114, p99 22/50/189/1,612 "
        "ms, 8.5 ms. After: the tables above. Other work on the machine varies from run to "
        "run, so compare *CPU ms a dossier* more than rates.",
        "**Not done (each a change of its own, with its tests):** in `up` the second "
        "process (tracker and notifier) costs about as much CPU a dossier as the intake's: "
        "the tracker's state is kept as a JSON document written whole at every event, and the "
        "notifier's consumer, dispatcher and SMS file each take a pass per batch. The "
        "profiles' line-level shares are approximate: py-spy samples without stopping the "
        "process, and a share it gave the answer's encoding (about a tenth) measured 12 µs "
        "a receipt on its own (now 3.5 µs, encoded by pydantic in one step)."
        + _replicas_sentence(result),
    ]
    return "\n\n".join(parts)


def _shared_paragraph(result: Run) -> str:
    others = [lv.cpu.cores("other") for s in result.setups for lv in s.levels if lv.cpu]
    if not others:
        return ""
    span = f"{min(others):.2f}–{max(others):.2f} cores (*CPU other*, mean "
    span += f"{sum(others) / len(others):.2f})"
    if max(others) < 0.2:
        return (
            "**A shared machine.** This machine is shared with other engineers' test and "
            f"benchmark runs; during this run's levels they used {span}, little this time "
            "(it varies from run to run: see *CPU other*). Compare setups within this run, "
            "and runs of other days by their shares of the ceiling measured in each, not by "
            "their rates."
        )
    return (
        "**A shared machine.** Other work on this machine (other engineers' test and "
        f"benchmark runs) used {span} of the 2 during the levels: each setup had what was "
        "left, and every rate here is lower than the same code gives on an idle machine. "
        "Compare setups within this run, and runs of other days by their shares of the "
        "ceiling measured in each, not by their rates."
    )


def _ceiling_paragraph(result: Run, ceiling: Ceiling, swept: SetupResult | None) -> str:
    rows = []
    for s in result.setups:
        most = max(s.levels, key=lambda lv: lv.rate)
        rows.append(f"{s.setup.name} {most.rate:,.0f}/s ({ceiling.share(most.rate):.0%})")
    sweep = ""
    if swept is not None:
        top = max(swept.levels, key=lambda lv: lv.rate)
        best = best_within_target(swept)
        within = (
            f"; with p99 < 50 ms, {best.rate:,.0f}/s at {best.concurrency} clerks" if best else ""
        )
        sweep = (
            f" Through the levels (setup `ceiling`) it answered at most {top.rate:,.0f}/s, at "
            f"{top.concurrency} clerks (p99 {ms(top.p(0.99))}){within}."
        )
    return (
        "**The ceiling.** A bare FastAPI endpoint validating the same bodies "
        f"(`bench/ceiling_app.py`) answered {ceiling.rate:,.0f}/s at the start of this run, "
        f"at {ceiling.level.concurrency} clerks (p99 {ms(ceiling.p99)}).{sweep} The "
        "intake's most dossiers/s as a share of it: " + ", ".join(rows) + ". The difference "
        "is what the token, the database, the outbox and the request log cost; the ceiling "
        "is the most one uvicorn worker of this interpreter can carry on this machine, "
        "whatever the intake does."
    )


def _replicas_sentence(result: Run) -> str:
    by_name = {s.setup.name: s for s in result.setups}
    one, two = by_name.get("postgres"), by_name.get("postgres-x2")
    if one is None or two is None:
        return ""
    best_one = max(lv.rate for lv in one.levels)
    best_two = max(lv.rate for lv in two.levels)
    why = (
        "the second process only had the CPU that PostgreSQL, the broker and the generator "
        "left, and the two take turns on each agency's code counter"
    )
    if best_two > best_one * (1 + RUN_TO_RUN):
        why = (
            "one process leaves its core partly idle while a batch's transaction is in "
            "flight, which the second one uses; but the two take turns on each agency's "
            "code counter, and their share of the machine is what PostgreSQL, the broker and "
            "the generator leave"
        )
    return (
        f" Two processes on these same two cores gave at most {best_two:,.0f} dossiers/s "
        f"against {best_one:,.0f} for one: {why}."
    )


def _cpu_paragraph(result: Run) -> str:
    rows = []
    for s in result.setups:
        top = _top(s)
        who = "the two processes (three services)" if s.setup.all_in_one else "the intake"
        rows.append(
            f"{s.setup.title} at {top.concurrency} clerks: {who} {top.cpu_ms('intake'):.1f} "
            f"ms of CPU a dossier, PostgreSQL {top.cpu_ms('postgres'):.1f}, the broker "
            f"{top.cpu_ms('broker'):.1f}, the generator {top.cpu_ms('generator'):.1f}"
        )
    pg = next((s for s in result.setups if s.setup.name == "postgres"), result.setups[0])
    top = _top(pg)
    per = top.cpu_ms(*OURS)
    busy = top.cpu.cores("intake") if top.cpu else float("nan")
    # Written for every run, whatever its figures: each sentence follows what was measured.
    if busy >= SATURATED_CORES:
        head = "**CPU, not waiting, is the limit.**"
        waited = ""
    else:
        head = "**CPU.**"
        waited = (
            " The rest of the time its event loop waited: for PostgreSQL's answers while a "
            "batch's transaction was in flight, and for the clerks' next requests."
        )
    if per > 2:
        budget = f"about {per / 2:.0f}× less than now."
    else:
        budget = f"this run's {per:.1f} ms are within it."
    return (
        f"{head} CPU a dossier at the highest concurrency: "
        + "; ".join(rows)
        + f". On PostgreSQL the intake process used {busy:.2f} cores there.{waited} A uvicorn "
        "worker runs Python on one core at most, so one intake process cannot pass 1,000 / "
        "(its ms a dossier) dossiers/s whatever the load; and with "
        f"{per:.1f} ms of CPU a dossier over the intake, PostgreSQL, the broker and the "
        f"generator together, the two cores carry at most about {2000 / per:,.0f} dossiers/s "
        "even if nothing else ran. 1,000 dossiers/s on two cores leaves 2 ms of CPU a "
        f"dossier for all of them: {budget}"
    )


def _latency_paragraph(result: Run) -> str:
    seen = []
    for s in result.setups:
        best = best_within_target(s)
        if best is not None:
            clerks = "1 clerk" if best.concurrency == 1 else f"{best.concurrency} clerks"
            seen.append(f"{s.setup.name} up to {clerks} ({best.rate:,.0f}/s)")
    where = "; ".join(seen) if seen else "nowhere"
    below = []  # the setups short of the target (the bare ceiling is none of the intake's)
    for s in result.setups:
        best = best_within_target(s)
        if s.setup.name != "ceiling" and (best is None or best.rate < s.setup.target_rate):
            below.append(f"{s.setup.name} (asked {s.setup.target_rate:,}/s)")
    short = ", ".join(below) or None
    return (
        "**Latency follows from throughput.** The clerks are a closed loop: once the intake "
        "is saturated, each added clerk only lengthens the queue, and latency ≈ clerks / "
        f"throughput (Little's law). p99 stayed under 50 ms {'at: ' if seen else ''}{where}."
        + (
            ""
            if short is None
            else f" Short of its target at p99 < 50 ms: {short}; more clerks only lengthen "
            "the queue there, until the CPU a dossier falls."
        )
    )


def _profile_paragraph(s: SetupResult) -> str:
    assert s.profile is not None
    prof = s.profile
    categories = sorted(prof.by_category.items(), key=lambda kv: -kv[1])[:4]
    top = ", ".join(f"{name} {count / max(prof.samples, 1):.0%}" for name, count in categories)
    # The receipt's handlers (FastAPI's route, the fast path) and, apart, the group commit's
    # batches: a receipt's transaction runs in the batcher's task, under neither handler.
    handlers = sum(prof.by_function.get(name, 0) for name in RECEIPT_HANDLERS) / max(
        prof.samples, 1
    )
    batches = prof.by_function.get(GROUP_COMMIT, 0) / max(prof.samples, 1)
    return (
        f"**Where the intake's time goes** ({s.setup.title}, py-spy, see *Profiles*): talking "
        f"to the database (driver + SQLAlchemy) {_share(prof, DATABASE):.0%} of the samples, "
        f"the HTTP stack (uvicorn, Starlette, FastAPI, the request-log middleware) "
        f"{_share(prof, HTTP):.0%}, pydantic and JSON {_share(prof, PYDANTIC):.0%}, logging "
        f"{_share(prof, ('logging: structlog, one line per request',)):.0%}; inside, the POST "
        f"/dossiers handlers {handlers:.0%} and the group commit's batches (the receipts' "
        f"transactions) {batches:.0%}. Largest categories: {top}. No single hot "
        "spot: the cost is spread over many small steps, each paid per statement or per "
        "request."
    )


def _round_trip_paragraph(costs: RoundTripCosts) -> str:
    return (
        "**Each statement costs more in Python than in PostgreSQL.** Before the group commit "
        "a POST /dossiers was eight round trips on one connection: the pool's pre-ping, "
        "BEGIN, the procedure, its agency, the day's code counter (an upsert), the dossier, "
        "the outbox row, COMMIT. Now a receipt has no statement of its own (two, the "
        "idempotency key's lookup and insert, when the header is sent): a batch is BEGIN, a "
        "read and a write of each agency's counter, one insert of the dossiers, one of the "
        "outbox rows, COMMIT. The outbox relay, woken once per batch, takes "
        "another transaction (advisory lock, read, publish, mark). Measured here "
        f"({costs.repeats:,} times each, CPU of the calling thread): a "
        f"primary-key SELECT costs {costs.asyncpg:.0f} µs with asyncpg alone, "
        f"{costs.sqlalchemy:,.0f} µs through SQLAlchemy Core, and {costs.transaction:,.0f} µs "
        "as a transaction of its own the way the intake opens them (checkout, BEGIN, SELECT, "
        "COMMIT)."
    )


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = common.arguments(NAME, __doc__)
    parser.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)))
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION, help="s per level")
    parser.add_argument("--setups", default=",".join(SETUPS), help=", ".join(SETUPS))
    parser.add_argument("--profile", action="store_true", help="py-spy one more run per setup")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="levels 1,4 for 2 s each, no warm-up, the ceiling for 2 s (a smoke run)",
    )
    parser.add_argument(
        "--sustain",
        type=float,
        nargs="?",
        const=SUSTAIN_SECONDS,
        default=0.0,
        metavar="SECONDS",
        help=f"after the levels, offer --sustain-rate for SECONDS (default {SUSTAIN_SECONDS:g}) "
        "open loop and sample the service process's RSS every second",
    )
    parser.add_argument(
        "--sustain-rate", type=float, default=TARGET_RATE, help="dossiers/s offered (--sustain)"
    )
    parser.add_argument(
        "--sustain-setups", default="up", help="the setups --sustain applies to (default: up)"
    )
    common.output_arguments(parser, keep="logs and SQLite files")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, command: str) -> int:
    setups = [SETUPS[name] for name in args.setups.split(",") if name]
    sustained = [name for name in args.sustain_setups.split(",") if name]
    if args.sustain and not {s.name for s in setups} & set(sustained):
        print(f"--sustain: none of {sustained} is among --setups", file=sys.stderr)
        return 2
    levels = [1, 4] if args.quick else [int(v) for v in args.levels.split(",") if v]
    if args.profile and not have_py_spy():
        return 2
    with common.work_folder("intake", args.keep, "logs and SQLite files") as folder:
        options = Options(
            levels=levels,
            duration=2.0 if args.quick else args.duration,
            database_url=args.database_url,
            profile=args.profile,
            folder=folder,
            warm_up=0.0 if args.quick else WARM_UP,
            **common.ceiling_options(args.quick),
            sustain=args.sustain,
            sustain_rate=args.sustain_rate,
            sustain_setups=sustained,
        )
        result = await run(setups, options, say=lambda line: print(line, flush=True))
        pg = None
        if any(s.database == "postgres" for s in setups):
            pg = await common.postgres_info(args.database_url)
    print()
    print(summary_table(result))
    if any(s.sustain for s in result.setups):
        print()
        print(_memory_verdict(result))
        print()
        print(sustain_table(result))
    return common.conclude(
        args, NAME, ROW, problems(result),
        lambda host: section(result, command, date.today(), host, pg, analysis(result)),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(NAME, argv, parse_args, main_async)


if __name__ == "__main__":
    sys.exit(main())
