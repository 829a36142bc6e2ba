"""Receipt to SMS: from the clerk's POST /dossiers to the citizen's SMS at the gateway, with the
three services running as separate processes (the production shape) at a fixed arrival rate.

Starts the bundled Kafka-protocol broker, a fake SMS gateway (bench/fake_gateway.py, its own
process), and `motcua intake`, `motcua tracker` and `motcua notifier` on PostgreSQL. Clerks post
dossiers open-loop: request *n* is due at start + n / rate whatever happened to the earlier
ones. Each applicant has a phone of their own, so the gateway's arrival time of the SMS to that
phone closes the dossier's latency. The run starts with the ceiling (`common.measure_ceiling`:
a bare FastAPI endpoint validating the dossier body, same generator), and the dossiers/s
carried are shown as a share of it. Writes the figures to bench/README.md::

    .venv/bin/python -m bench.receipt_to_sms [--rates 20,200] [--duration 25] [--profile]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/motcua_bench]

The tables of the three services in that database are emptied first: give the benchmark a
database of its own (its name must contain "bench").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from bench import common
from bench.common import (
    PROCEDURES,
    TRANSPORT_ERRORS,
    Applicants,
    Ceiling,
    CpuShares,
    CpuSnapshot,
    HttpConnection,
    ServiceProcess,
    ms,
    percentile,
)
from bench.fake_gateway import Arrival, GatewayProcess
from bench.profiling import Profile, Recorder, have_py_spy, profile_tables
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import EmbeddedBroker, free_port
from services.tracker.adapters import tables as tt

NAME = "receipt_to_sms"
TITLE = "Receipt to SMS"
ROW = (
    f"| [{TITLE}](#{common.slug(TITLE)}) | `bench/{NAME}.py` | latency from POST /dossiers to the "
    "receipt SMS at the gateway, three services as processes on PostgreSQL, at a fixed rate "
    "(target p99 < 1 s at 200 dossiers/s) |"
)
TARGET_RATE = 200.0  # dossiers per second
TARGET_P99 = 1.0  # seconds
DEFAULT_RATES = (20.0, 200.0)  # below saturation, and the target
DEFAULT_DURATION = 25.0  # seconds of arrivals per rate
SMS_RATE = 400  # MOTCUA_SMS_RATE_PER_SECOND: above the offered load, so it is not what limits
MAX_IN_FLIGHT = 256  # requests open at once; later ones wait in the generator (and it shows)
GIVE_UP_AFTER = 10.0  # seconds after the last arrival is due: requests not sent by then aren't
DRAIN_TIMEOUT = 60.0  # seconds to wait for the last SMS after the last answer
WARM_UP = 20  # dossiers whose SMS must arrive before the measured run
PROFILE_SECONDS = 10.0  # the profiled run, at the lowest rate (below saturation)
WINDOW = 10.0  # seconds: latency per window of arrivals, to show a backlog growing
SEED = 20261124
REQUEST_TIMEOUT = 60.0
POOL_TIMEOUT = "QueuePool limit of size"  # SQLAlchemy's message when no connection came


# -- the open-loop load -----------------------------------------------------------------------


@dataclass
class Posted:
    serial: int
    due: float  # time.monotonic() the request was due (the clerk pressed "receive")
    sent: float | None = None  # when it was written (None: never sent)
    answered: float | None = None
    status: int | None = None
    failure: str | None = None


class Clerks:
    """Keep-alive connections to the intake, reused; one body per serial (a phone each)."""

    def __init__(self, port: int, tokens: dict[str, str], seed: int) -> None:
        self.port = port
        self.auth = {agency: common.bearer(token) for agency, token in tokens.items()}
        self.applicants = Applicants(seed)
        self.idle: list[HttpConnection] = []
        self.in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    async def post(self, posted: Posted, give_up_at: float) -> None:
        procedure = PROCEDURES[posted.serial % len(PROCEDURES)]
        body = self.applicants.encoded(posted.serial, procedure)
        async with self.in_flight:
            if time.monotonic() > give_up_at:
                posted.failure = "not sent in time"
                return
            conn = self.idle.pop() if self.idle else HttpConnection(self.port)
            posted.sent = time.monotonic()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    posted.status, _ = await conn.request(
                        "POST", "/dossiers", body, self.auth[procedure.agency]
                    )
            except TRANSPORT_ERRORS as exc:
                posted.failure = type(exc).__name__
                return
            posted.answered = time.monotonic()
            self.idle.append(conn)


async def open_loop(clerks: Clerks, rate: float, seconds: float, first_serial: int) -> list[Posted]:
    """Requests due at a fixed rate, each sent when due (or as soon as fewer than
    MAX_IN_FLIGHT are open); those not sent GIVE_UP_AFTER seconds after the last was due are
    given up."""
    count = int(rate * seconds)
    start = time.monotonic() + 0.05
    give_up_at = start + seconds + GIVE_UP_AFTER
    posted = [Posted(first_serial + i, start + i / rate) for i in range(count)]
    tasks = []
    for one in posted:
        delay = one.due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(clerks.post(one, give_up_at)))
    await asyncio.gather(*tasks)
    return posted


# -- one rate ---------------------------------------------------------------------------------


@dataclass
class RateResult:
    rate: float
    seconds: float
    posted: list[Posted]
    latencies: dict[int, float]  # serial → SMS arrival − due, for the SMS that arrived
    after_answer: list[float]  # SMS arrival − 201 answer
    duplicates: int  # messages the gateway saw more than once (same request_id)
    strays: int  # SMS to phones this run did not post
    cpu: CpuShares | None = None  # while the dossiers arrived
    cpu_total: CpuShares | None = None  # until their last SMS (or the drain gave up)
    stages: dict[str, list[float]] = field(default_factory=dict)  # seconds, per stage
    pool_timeouts: int = 0  # intake requests that waited 30 s for a database connection
    drain_seconds: float = 0.0  # from the last answer to the last SMS

    @property
    def created(self) -> list[Posted]:
        return [p for p in self.posted if p.status == 201]

    @property
    def arrived(self) -> int:
        return len(self.latencies)

    @property
    def missing(self) -> int:
        return len(self.created) - self.arrived

    def p(self, fraction: float) -> float:
        return percentile(list(self.latencies.values()), fraction)

    def http(self, fraction: float) -> float:
        return percentile([p.answered - p.due for p in self.created if p.answered], fraction)

    def lag(self) -> float:
        """The most a request was sent after it was due (generator behind, or MAX_IN_FLIGHT)."""
        return max((p.sent - p.due for p in self.posted if p.sent), default=0.0)

    def failures(self) -> Counter[str]:
        found: Counter[str] = Counter()
        for p in self.posted:
            if p.failure:
                found[p.failure] += 1
            elif p.status != 201:
                found[f"HTTP {p.status}"] += 1
        return found

    def cpu_ms(self, *groups: str) -> float:
        """Milliseconds of CPU per dossier created, over these groups."""
        created, cpu = len(self.created), self.cpu_total
        if cpu is None or not created:
            return float("nan")
        return sum(cpu.cores(g) for g in groups) * cpu.wall / created * 1000

    @property
    def carried(self) -> float:
        """201s per second of the run."""
        return len(self.created) / self.seconds

    def windows(self) -> list[tuple[int, int, float, float, float]]:
        """(start s, dossiers, p50, p99, max) per WINDOW seconds of due times."""
        if not self.posted:
            return []
        start = self.posted[0].due
        by_window: dict[int, list[float]] = {}
        for p in self.created:
            window = int((p.due - start) // WINDOW)
            by_window.setdefault(window, [])
            if p.serial in self.latencies:
                by_window[window].append(self.latencies[p.serial])
        return [
            (int(w * WINDOW), len(v), percentile(v, 0.5), percentile(v, 0.99), max(v, default=0))
            for w, v in sorted(by_window.items())
        ]


def latencies_of(
    posted: Sequence[Posted], arrivals: Sequence[Arrival], earlier: set[str]
) -> tuple[dict[int, float], list[float], int, int]:
    """(serial → arrival − due, arrival − answer, duplicates, strays) of this run's SMS;
    `earlier`: the phones of earlier runs, whose SMS are neither this run's nor strays."""
    by_phone = {common.e164_of(p.serial): p for p in posted if p.status == 201}
    latencies: dict[int, float] = {}
    after_answer: list[float] = []
    duplicates = strays = 0
    for arrival in arrivals:
        one = by_phone.get(arrival.to)
        if one is None:
            strays += arrival.to not in earlier
            continue
        if not arrival.first or one.serial in latencies:
            duplicates += 1
            continue
        latencies[one.serial] = arrival.at - one.due
        assert one.answered is not None
        after_answer.append(arrival.at - one.answered)
    return latencies, after_answer, duplicates, strays


# -- where the time goes, from the services' own timestamps ---------------------------------

STAGES = (
    "request start → `dossier.received` published (the intake's commit, its outbox relay)",
    "published → notice stored (Kafka, the notifier's consumer)",
    "notice stored → SMS accepted (the notifier's dispatcher, the gateway)",
)
STAGES_SQL = sa.text(
    """
    SELECT n.recipient,
           extract(epoch FROM o.published_at - o.created_at),
           extract(epoch FROM n.created_at - o.published_at),
           extract(epoch FROM n.first_attempt_at - n.created_at)
    FROM notifier_notices n JOIN intake_outbox o ON o.key = n.dossier_id
    WHERE n.template = 'received' AND o.published_at IS NOT NULL
      AND n.first_attempt_at IS NOT NULL
    """
)


async def stage_latencies(url: str, phones: set[str]) -> dict[str, list[float]]:
    """Seconds spent in each stage by the dossiers texted at these phones: the intake's
    outbox row (created at the request's start, marked when published) and the notice
    (stored, first attempt recorded), all stamped by the services' clocks."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(STAGES_SQL)).all()
    finally:
        await engine.dispose()
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    for recipient, *seconds in rows:
        if recipient in phones:
            for name, value in zip(STAGES, seconds, strict=True):
                stages[name].append(float(value))
    return stages


# -- the system -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    rates: Sequence[float]
    duration: float
    database_url: str
    folder: Path
    profile: bool = False
    sms_rate: float = SMS_RATE
    warm_up: int = WARM_UP
    drain_timeout: float = DRAIN_TIMEOUT
    ceiling_seconds: float = common.CEILING_SECONDS
    ceiling_warm_up: float = common.CEILING_WARM_UP


class System:
    """Broker, gateway and the three services, started and stopped together."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.broker: EmbeddedBroker | None = None
        self.gateway: GatewayProcess | None = None
        self.processes: list[ServiceProcess] = []
        self.sent_sms = 0  # distinct SMS the gateway had before the current run
        self.phones: set[str] = set()  # of every dossier posted so far

    async def start(self) -> None:
        o = self.options
        await common.fresh_postgres(o.database_url, ["intake", "tracker", "notifier"])
        self.broker = await common.start_broker(o.folder)
        self.gateway = GatewayProcess()
        notifier_port = free_port()
        env = common.service_env(
            {
                "database_url": o.database_url,
                "kafka_bootstrap": self.broker.bootstrap,
                "sms_gateway_url": self.gateway.url,
                "sms_rate_per_second": f"{o.sms_rate:g}",
                "quiet_hours": "",  # the SMS goes out whatever the hour of the run
                "callback_base_url": f"http://127.0.0.1:{notifier_port}",
                "data_dir": str(o.folder / "var"),
            }
        )
        self.processes = [
            ServiceProcess("intake", env, o.folder / "intake.log"),
            ServiceProcess("tracker", env, o.folder / "tracker.log"),
            ServiceProcess("notifier", env, o.folder / "notifier.log", port=notifier_port),
        ]
        await common.start_services(self.processes)

    @property
    def intake(self) -> ServiceProcess:
        return self.processes[0]

    def pid_of(self, command: str) -> list[int]:
        return [p.pid for p in self.processes if p.command == command]

    def cpu_groups(self) -> dict[str, Sequence[int] | str]:
        assert self.broker and self.broker.pid and self.gateway
        return {
            "intake": self.pid_of("intake"),
            "tracker": self.pid_of("tracker"),
            "notifier": self.pid_of("notifier"),
            "gateway": [self.gateway.pid],
            "generator": [os.getpid()],
            "postgres": "postgres",
            "broker": [self.broker.pid],
        }

    async def stop(self) -> list[int | None]:
        codes = common.stop_services(self.processes)
        if self.gateway:
            self.gateway.stop()
        if self.broker:
            await self.broker.stop()
        return codes


async def warm_up(system: System, clerks: Clerks, count: int) -> None:
    """A few dossiers end to end: the consumer groups have joined, the pools are open."""
    assert system.gateway
    posted = await open_loop(clerks, 10.0, count / 10.0, first_serial=1)
    created = sum(1 for p in posted if p.status == 201)
    if created != count:
        raise RuntimeError(f"warm-up: {created} of {count} dossiers created: {posted[:3]}")
    got = await system.gateway.wait_for(count, 120, stalled_after=90)
    if got < count:
        raise RuntimeError(f"warm-up: {got} of {count} SMS arrived")
    tracked = await common.poll(  # the tracker's consumer group may still be joining
        lambda: common.count_rows(system.options.database_url, tt.dossiers),
        lambda n: n >= count, 90, 0.2,
    )  # fmt: skip
    if tracked < count:
        raise RuntimeError(f"warm-up: the tracker holds {tracked} of {count} dossiers")
    system.sent_sms = got
    system.phones |= {common.e164_of(p.serial) for p in posted}


async def measure_rate(
    system: System, clerks: Clerks, rate: float, first_serial: int, seconds: float | None = None
) -> RateResult:
    assert system.gateway
    o = system.options
    timeouts_before = system.intake.log_lines(POOL_TIMEOUT)
    before = CpuSnapshot.take()
    started = time.monotonic()
    posted = await open_loop(clerks, rate, seconds or o.duration, first_serial)
    seconds = time.monotonic() - started
    cpu = common.cpu_between(before, CpuSnapshot.take(), system.cpu_groups())
    created = sum(1 for p in posted if p.status == 201)
    last_answer = max((p.answered for p in posted if p.answered), default=time.monotonic())
    await system.gateway.wait_for(system.sent_sms + created, o.drain_timeout)
    cpu_total = common.cpu_between(before, CpuSnapshot.take(), system.cpu_groups())
    arrivals = await system.gateway.arrivals()
    latencies, after_answer, duplicates, strays = latencies_of(posted, arrivals, system.phones)
    phones = {common.e164_of(p.serial) for p in posted}
    system.phones |= phones
    stages = await stage_latencies(o.database_url, phones)
    system.sent_sms, _ = await system.gateway.count()
    last_sms = max((a.at for a in arrivals), default=last_answer)
    return RateResult(
        rate=rate,
        seconds=seconds,
        posted=posted,
        latencies=latencies,
        after_answer=after_answer,
        duplicates=duplicates,
        strays=strays,
        cpu=cpu,
        cpu_total=cpu_total,
        stages=stages,
        pool_timeouts=system.intake.log_lines(POOL_TIMEOUT) - timeouts_before,
        drain_seconds=max(last_sms - last_answer, 0.0),
    )


@dataclass
class Run:
    options: Options
    rates: list[RateResult] = field(default_factory=list)
    profile: dict[str, Profile] = field(default_factory=dict)
    profile_rate: RateResult | None = None
    notices: Counter[str] = field(default_factory=Counter)
    exit_codes: list[int | None] = field(default_factory=list)
    load_average: tuple[float, float] = (0.0, 0.0)
    ceiling: Ceiling | None = None  # measured at the start of the run


async def run(options: Options, say: Callable[[str], None] = lambda _: None) -> Run:
    result = Run(options)
    load_at_start = common.load_average()
    common.check_phones()
    result.ceiling = await common.measure_ceiling(
        options.ceiling_seconds, warm_up=options.ceiling_warm_up
    )
    say(result.ceiling.line())
    await common.ensure_database(options.database_url)
    system = System(options)
    try:
        say("starting the broker, the gateway and the three services")
        await system.start()
        tokens = await common.open_office(options.database_url, system.intake.port)
        clerks = Clerks(system.intake.port, tokens, SEED)
        await warm_up(system, clerks, options.warm_up)
        say(f"warm-up: {options.warm_up} dossiers texted")
        serial = 1_000_000
        for rate in sorted(options.rates):
            measured = await measure_rate(system, clerks, rate, serial)
            serial += len(measured.posted) + 1
            result.rates.append(measured)
            say(rate_line(measured, result.ceiling))
            if options.profile and result.profile_rate is None:
                # Below saturation, before a higher rate leaves backlogs behind.
                result.profile_rate, result.profile = await profiled_run(system, clerks, serial)
                serial += len(result.profile_rate.posted) + 1
                say("profiled " + rate_line(result.profile_rate, result.ceiling))
        clerks.close()
        result.notices = await common.notice_statuses(options.database_url)
    finally:
        result.exit_codes = await system.stop()
    result.load_average = (load_at_start, common.load_average())
    return result


async def profiled_run(
    system: System, clerks: Clerks, first_serial: int
) -> tuple[RateResult, dict[str, Profile]]:
    """The lowest rate again, for a while, with the three services sampled by py-spy."""
    o = system.options
    seconds = min(o.duration, PROFILE_SECONDS)
    recorders = {
        c: Recorder(system.pid_of(c), seconds, o.folder / c)
        for c in ("intake", "tracker", "notifier")
    }
    measured = await measure_rate(system, clerks, min(o.rates), first_serial, seconds)
    return measured, {c: await r.result() for c, r in recorders.items()}


def rate_line(r: RateResult, ceiling: Ceiling | None = None) -> str:
    share = f", {ceiling.share(r.carried):.0%} of the ceiling" if ceiling else ""
    return (
        f"{r.rate:g}/s offered: {len(r.created)} created ({r.carried:.0f}/s{share}), "
        f"{r.arrived} SMS arrived, {r.missing} missing, {r.duplicates} duplicates; receipt→SMS "
        f"p50 {ms(r.p(0.5))} p95 {ms(r.p(0.95))} p99 {ms(r.p(0.99))} max "
        f"{ms(max(r.latencies.values(), default=float('nan')))}; POST p99 {ms(r.http(0.99))}; "
        f"failures {dict(r.failures())}; CPU {r.cpu.describe() if r.cpu else '?'}"
    )


def problems(result: Run) -> list[str]:
    found = result.ceiling.problems() if result.ceiling else []
    for r in result.rates:
        if r.duplicates:
            found.append(f"{r.rate:g}/s: {r.duplicates} SMS sent twice")
        if r.strays:
            found.append(f"{r.rate:g}/s: {r.strays} SMS to phones nobody posted")
        if not r.created:
            found.append(f"{r.rate:g}/s: no dossier created")
    if any(code != 0 for code in result.exit_codes):
        found.append(f"exit codes {result.exit_codes}")
    return found


def met(r: RateResult) -> bool:
    return r.rate >= TARGET_RATE and not r.failures() and r.missing == 0 and r.p(0.99) < TARGET_P99


# -- the README section -----------------------------------------------------------------------

CPU_GROUPS = ("intake", "tracker", "notifier", "gateway", "generator", "postgres", "broker")


def rates_table(rates: Sequence[RateResult], ceiling: Ceiling | None = None) -> str:
    lines = [
        "| Offered | Due | Created (201) | Not created | Carried | Carried ÷ ceiling "
        "| SMS arrived "
        "| Late past the wait | Sent twice | receipt→SMS p50 | p95 | p99 | max | POST p50 "
        "| POST p99 | SMS after the 201, p50 | Generator late by, max |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rates:
        failures = ", ".join(f"{c}× {k}" for k, c in r.failures().most_common()) or "0"
        share = f"{ceiling.share(r.carried):.0%}" if ceiling else "–"
        lines.append(
            f"| {r.rate:g}/s | {len(r.posted):,} | {len(r.created):,} | {failures} "
            f"| {r.carried:,.0f}/s | {share} | {r.arrived:,} | {r.missing:,} | {r.duplicates} "
            f"| {ms(r.p(0.5))} | {ms(r.p(0.95))} | **{ms(r.p(0.99))}** "
            f"| {ms(max(r.latencies.values(), default=float('nan')))} | {ms(r.http(0.5))} "
            f"| {ms(r.http(0.99))} | {ms(percentile(r.after_answer, 0.5))} | {ms(r.lag())} |"
        )
    return "\n".join(lines)


def cpu_table(rates: Sequence[RateResult]) -> str:
    lines = [
        "| Offered | " + " | ".join(CPU_GROUPS) + " | other | machine busy |",
        "| ---: |" + " ---: |" * (len(CPU_GROUPS) + 2),
    ]
    for r in rates:
        if r.cpu is None:
            continue
        shares = " | ".join(f"{r.cpu.cores(g):.2f}" for g in (*CPU_GROUPS, "other"))
        lines.append(f"| {r.rate:g}/s | {shares} | {r.cpu.machine:.2f} / {os.cpu_count()} |")
    lines += [
        "",
        "CPU per dossier created, in milliseconds, from the first arrival to the last SMS "
        "(*ours*: every group but other):",
        "",
        "| Offered | " + " | ".join(CPU_GROUPS) + " | ours |",
        "| ---: |" + " ---: |" * (len(CPU_GROUPS) + 1),
    ]
    for r in rates:
        each = " | ".join(f"{r.cpu_ms(g):.1f}" for g in CPU_GROUPS)
        lines.append(f"| {r.rate:g}/s | {each} | **{r.cpu_ms(*CPU_GROUPS):.1f}** |")
    return "\n".join(lines)


def stages_table(rates: Sequence[RateResult]) -> str:
    lines = [
        "| Offered | " + " | ".join(f"{name}: p50 / p99" for name in STAGES) + " |",
        "| ---: |" + " ---: |" * len(STAGES),
    ]
    for r in rates:
        cells = []
        for name in STAGES:
            seconds = r.stages.get(name, [])
            cells.append(f"{ms(percentile(seconds, 0.5))} / {ms(percentile(seconds, 0.99))}")
        lines.append(f"| {r.rate:g}/s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def windows_table(r: RateResult) -> str:
    lines = [
        "| Due in (s) | Dossiers created | receipt→SMS p50 | p99 | max |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for start, count, p50, p99, top in r.windows():
        lines.append(
            f"| {start}–{start + int(WINDOW)} | {count:,} | {ms(p50)} | {ms(p99)} | {ms(top)} |"
        )
    return "\n".join(lines)


def section(
    result: Run,
    command: str,
    today: date,
    host: dict[str, str],
    pg: dict[str, str],
    analysis: str = "",
) -> str:
    target = [r for r in result.rates if r.rate >= TARGET_RATE]
    if not target:
        verdict = f"not measured at {TARGET_RATE:g} dossiers/s"
    elif all(met(r) for r in target):
        r = target[0]
        verdict = (
            f"met: at {r.rate:g} dossiers/s every SMS arrived, p99 {ms(r.p(0.99))} from receipt "
            "to the gateway"
        )
    else:
        r = target[0]
        verdict = (
            f"missed: at {r.rate:g} dossiers/s offered, {len(r.created):,} of {len(r.posted):,} "
            f"dossiers were created ({r.carried:,.0f}/s carried), p99 from receipt to the "
            f"gateway {ms(r.p(0.99))}"
        )
    o = result.options
    parts = [
        f"## {TITLE}",
        "",
        "Target: *p99 < 1 s from receipt to SMS at 200 dossiers/s, on this 2-core machine.*",
        "",
        f"**Result: {verdict}.**" + _ceiling_sentence(result),
        "",
        rates_table(result.rates, result.ceiling),
        "",
        result.ceiling.sentence() if result.ceiling else "",
        "",
        common.date_line(today),
        common.machine_line(host, shared="every process below shares these cores"),
        f"- {common.versions_line(host)}; broker {host['kafka']}",
        common.postgres_line(pg, "shared_buffers", "synchronous_commit"),
        common.load_line(result.load_average),
        *common.command_lines(
            "starts everything, empties the three services' tables in the database, measures, "
            "rewrites this section",
            command,
        ),
        "",
        "### Method",
        "",
        "- **Shape.** The production shape, as separate processes on one machine: `python -m "
        "services.cli intake`, `… tracker`, `… notifier` (each uvicorn with one worker), one "
        "PostgreSQL database for the three (`MOTCUA_DATABASE_URL`), the bundled "
        "Kafka-protocol broker (Tansu, memory storage, 3 partitions a topic) as "
        "`MOTCUA_KAFKA_BOOTSTRAP`, and `MOTCUA_SMS_GATEWAY_URL` pointing at a fake gateway "
        "(`bench/fake_gateway.py`: the contract's `POST /messages` in a process of its own, "
        "one asyncio protocol, about 60 µs of CPU a message; it records when each message was "
        "read, with the system-wide monotonic clock the generator also reads).",
        f"- **Settings.** `MOTCUA_QUIET_HOURS` empty (SMS go out whatever the hour of the "
        f"run); `MOTCUA_SMS_RATE_PER_SECOND={o.sms_rate:g}`, above the offered load: the "
        "default of 20/s would cap the SMS at 20 a second and let the queue grow by the rest "
        "(that rate is measured in the notifier's section); every other setting is the "
        "default. No polling sets the floor: the intake's outbox relay is woken by the "
        "commit of the dossier, the notifier's dispatcher by the notice its consumer stored "
        "(`MOTCUA_OUTBOX_POLL_SECONDS` and `MOTCUA_DISPATCH_POLL_SECONDS` stay at 1 s and "
        "only matter when a wake-up is missed).",
        "- **Path of a dossier.** Intake: one transaction (dossier + outbox row), 201; its "
        "relay publishes `dossier.received`. Notifier: its consumer decides and stores the "
        "receipt notice, wakes the dispatcher, which claims it and sends it. The tracker "
        "consumes the same event (deadline state, `deadline.changed` back to the intake's "
        "read model and to the notifier): not on the SMS's path, but on the same cores.",
        f"- **Load.** {len(PROCEDURES)} procedures of {len(common.AGENCIES)} agencies, a clerk "
        "token per agency; applicants as in the intake benchmark, each with a phone of their "
        "own. Open loop: dossier *n* of a run is due at start + *n* / rate whatever happened "
        f"to the others; at most {MAX_IN_FLIGHT} requests are open at once (the rest wait in "
        "the generator, which shows as *Generator late by*); requests still unsent "
        f"{GIVE_UP_AFTER:g} s after the last one was due are given up (*Not created*). "
        f"{o.duration:g} s of arrivals per rate, after a warm-up of {o.warm_up} dossiers "
        "whose SMS had to arrive (consumer groups joined, pools open).",
        "- **Latency** is the gateway's arrival time of the SMS minus the time its POST was "
        "*due*: the clerk's click, so time spent waiting for a free connection counts (it is "
        "the send time whenever the generator kept up). *SMS after the 201*: arrival minus "
        "the intake's answer. After the arrivals end, the benchmark waits for the SMS of "
        f"every 201, for {o.drain_timeout:g} s at most (less if none comes for 20 s); *Late "
        "past the wait*: those not at the gateway by then — still queued in the notifier, "
        "not lost (see the notices by status at the end).",
        "- **Checked:** no SMS sent twice (a request id seen twice at the gateway), none to a "
        "phone nobody posted, every process stops with status 0.",
    ]
    if result.ceiling:
        parts.append(
            common.ceiling_method(result.ceiling, "the dossiers/s carried at each rate")
            + " The ceiling is one process on one core; this benchmark's dossiers go through "
            "three services, PostgreSQL and the broker on the same two cores."
        )
    if result.profile:
        parts.append(
            f"- **Profile.** One more run of {PROFILE_SECONDS:g} s at the lowest rate, right "
            "after it (before any higher rate), the three services sampled by py-spy "
            "(`record --rate 200 --nonblocking --threads`), as in the intake benchmark."
        )
    parts += [
        "",
        "### Figures",
        "",
        "CPU used during the arrivals, in cores (1.00 = one core all the time):",
        "",
        cpu_table(result.rates),
        "",
    ]
    parts += [
        "Where the time goes, from the services' own timestamps (the intake's outbox row is "
        "stamped when the request starts and when the relay has published it; the notice "
        "when stored and when the gateway's answer is recorded):",
        "",
        stages_table(result.rates),
        "",
    ]
    for r in result.rates:
        parts += [
            f"receipt→SMS by due time at {r.rate:g}/s (last SMS {r.drain_seconds:.1f} s after "
            "the last 201):",
            "",
            windows_table(r),
            "",
        ]
    parts.append(
        "Notices in the notifier's table at the end, by status: "
        + ", ".join(f"{s} {c:,}" for s, c in result.notices.most_common())
        + f". Exit status of the services: {', '.join(str(c) for c in result.exit_codes)}."
    )
    if analysis:
        parts += ["", "### What limits it", "", analysis.strip()]
    if result.profile and result.profile_rate:
        r = result.profile_rate
        parts += [
            "",
            "### Profiles",
            "",
            f"Profiled run: {r.rate:g}/s offered, {r.carried:,.0f}/s carried, receipt→SMS p99 "
            f"{ms(r.p(0.99))}.",
        ]
        for name, prof in result.profile.items():
            parts += [
                "",
                f"#### `motcua {name}`",
                "",
                f"{prof.samples:,} samples over {prof.seconds:g} s "
                f"(threads active {prof.busy():.0%} of the time).",
                "",
                profile_tables(prof),
            ]
    return "\n".join(parts)


def _ceiling_sentence(result: Run) -> str:
    """The headline (dossiers/s carried at the target, or at the highest rate offered) as a
    share of the ceiling measured in this run."""
    if result.ceiling is None or not result.rates:
        return ""
    target = [r for r in result.rates if r.rate >= TARGET_RATE]
    r = target[0] if target else max(result.rates, key=lambda r: r.rate)
    return f" Carried at {r.rate:g}/s offered: {result.ceiling.ratio(r.carried, 'dossiers/s')}."


# -- what limits it ---------------------------------------------------------------------------


def analysis(result: Run) -> str:
    """What limits receipt→SMS, from this run's figures."""
    if not result.rates:
        return ""
    low = min(result.rates, key=lambda r: r.rate)
    high = max(result.rates, key=lambda r: r.rate)
    per = low.cpu_ms(*CPU_GROUPS)
    by_service = ", ".join(f"{g} {low.cpu_ms(g):.1f}" for g in CPU_GROUPS)
    parts = [
        "**CPU.** Every dossier costs CPU in three Python services, PostgreSQL and the "
        f"broker: at {low.rate:g}/s, {per:.1f} ms of CPU a dossier in all ({by_service}). "
        f"Two cores give 2,000 ms of CPU a second, so they carry at most about "
        f"{2000 / per:,.0f} dossiers/s end to end even with nothing else running; 200 "
        f"dossiers/s leaves 10 ms a dossier, about {per / 10:.1f}× less than now. Each "
        "service is one process running Python on one core at most, and the intake's "
        "share alone (see the intake's section) caps it well below 200/s.",
        _saturation_paragraph(high),
        _saturation_paragraph(low) if low is not high else "",
        _stage_sentence(low),
        "No polling sets a floor: the intake's commit wakes its outbox relay, and the "
        "notifier's consumer wakes the dispatcher when it stores a notice. Each stage is a "
        "handful of database round trips in Python: the intake's request (8) and relay pass; "
        "the notifier's consumer, one transaction per record (card, notice, history); the "
        "dispatcher, a claim per batch then one transaction per SMS for its outcome. The "
        "consumers of the three services take a subscriber's records one at a time and "
        "commit the offset after each (faststream's ack under `AckPolicy.NACK_ON_ERROR` "
        "calls `consumer.commit()`): a round trip to the broker per record, during which "
        "that consumer waits. The tracker's work on the same event runs beside them on the "
        "same cores.",
    ]
    for name, prof in result.profile.items():
        categories = sorted(prof.by_category.items(), key=lambda kv: -kv[1])[:3]
        top = ", ".join(f"{n} {c / max(prof.samples, 1):.0%}" for n, c in categories)
        parts.append(f"Profile of `motcua {name}` (see *Profiles*): {top}.")
    return "\n\n".join(p for p in parts if p)


def _saturated(r: RateResult) -> bool:
    """The system fell behind: dossiers given up, or SMS later and later over the run."""
    windows = r.windows()
    growing = len(windows) > 1 and windows[-1][2] > 2 * max(windows[0][2], 0.5)
    return bool(r.failures()) or r.carried < 0.95 * r.rate or growing


def _saturation_paragraph(r: RateResult) -> str:
    after = ms(percentile(r.after_answer, 0.5))
    if not _saturated(r):
        return (
            f"**At {r.rate:g}/s** the services kept up: every dossier created, the latency flat "
            f"over the run, the SMS at the gateway {after} (median) after the intake's 201 and "
            f"p99 {ms(r.p(0.99))} from the clerk's click."
        )
    text = (
        f"**At {r.rate:g}/s offered** {len(r.created):,} of {len(r.posted):,} dossiers were "
        f"created ({r.carried:,.0f}/s carried) and the services fell behind: requests queued "
        f"at the intake (POST p99 {ms(r.http(0.99))}), events at the consumers, and each "
        "backlog made every later SMS later still (the latency by due time grows through "
        f"the run; the SMS came {after} after the 201, median)."
    )
    errors = r.failures().get("HTTP 500", 0)
    if errors:
        text += (
            f" {_count(errors, 'request')} answered 500; the intake logged "
            f"{_count(r.pool_timeouts, 'request')} that waited 30 s for one of its pool's 20 "
            "database connections (SQLAlchemy's `QueuePool limit … timed out`). The intake "
            "answers 503 with `Retry-After` when the database is away "
            "(`is_transient_database_error`), but a pool timeout is not one of those errors, "
            "so an overloaded intake answers 500, which the project counts as a bug: left as it "
            "is, reported."
        )
    return text


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _stage_sentence(r: RateResult) -> str:
    if not any(r.stages.values()):
        return ""
    medians = {name: percentile(v, 0.5) for name, v in r.stages.items() if v}
    slowest = max(medians, key=lambda n: medians[n])
    listed = "; ".join(f"{name} {ms(m)}" for name, m in medians.items())
    return (
        f"**Stages at {r.rate:g}/s** (medians, from the services' timestamps): {listed}. "
        f"The longest is {slowest.split(' (')[0]}."
    )


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = common.arguments(NAME, __doc__)
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in DEFAULT_RATES))
    parser.add_argument("--duration", type=float, default=DEFAULT_DURATION, help="s per rate")
    parser.add_argument("--sms-rate", type=float, default=SMS_RATE)
    parser.add_argument("--profile", action="store_true", help="py-spy one more run")
    parser.add_argument(
        "--quick", action="store_true", help="20/s for 3 s, the ceiling for 2 s (a smoke run)"
    )
    common.output_arguments(parser, keep="services' logs")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, command: str) -> int:
    if args.profile and not have_py_spy():
        return 2
    with common.work_folder("sms", args.keep, "the services' logs") as folder:
        options = Options(
            rates=[20.0] if args.quick else [float(r) for r in args.rates.split(",") if r],
            duration=3.0 if args.quick else args.duration,
            database_url=args.database_url,
            folder=folder,
            profile=args.profile,
            sms_rate=args.sms_rate,
            warm_up=5 if args.quick else WARM_UP,
            **common.ceiling_options(args.quick),
        )
        result = await run(options, say=lambda line: print(line, flush=True))
        pg = await common.postgres_info(args.database_url)
    return common.conclude(
        args, NAME, ROW, problems(result),
        lambda host: section(result, command, date.today(), host, pg, analysis(result)),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(NAME, argv, parse_args, main_async)


if __name__ == "__main__":
    sys.exit(main())
