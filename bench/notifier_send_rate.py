"""The notifier's send rate: SMS a second reaching a fast fake gateway, from notices already
decided and from dossier events on Kafka, on PostgreSQL and SQLite; unlimited and at the default
token-bucket rate.

Each run starts from an empty notifier database and a fresh broker, preloads N dossiers, then
starts `motcua notifier` as a process and counts the SMS arriving at the fake gateway
(bench/fake_gateway.py, its own process). Modes:

- ``queued``: the receipt notices are decided and stored before the notifier starts (through
  the notifier's own repository and composer, as its consumer stores them): the dispatcher
  alone is measured — claim a batch, send, record each outcome.
- ``events``: N ``dossier.received`` events wait on ``motcua.dossier.v1``: the whole notifier
  is measured — consume, decide, store, wake the dispatcher, send.

The run starts with the ceiling (`common.measure_ceiling`: a bare FastAPI endpoint validating
the dossier body, the intake benchmark's generator), and each case's SMS/s is shown as a share
of it. Writes the figures to bench/README.md::

    .venv/bin/python -m bench.notifier_send_rate [--profile] [--notices 2000] [--events 600]
        [--default-rate-notices 300]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1:5432/motcua_bench]

The notifier tables of the PostgreSQL database are emptied first: give the benchmark a database
of its own (its name must contain "bench").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from datetime import time as wall
from pathlib import Path

from aiokafka import AIOKafkaProducer

from bench import common
from bench.common import (
    PROCEDURES,
    Applicants,
    Ceiling,
    CpuShares,
    CpuSnapshot,
    ProcedureSpec,
    ServiceProcess,
)
from bench.fake_gateway import Arrival, GatewayProcess
from bench.profiling import Profile, Recorder, have_py_spy, profile_tables
from schemas.events import EVENT_TYPE_OF, Address, Applicant, Envelope, parse_payload
from services.core.calendars import CalendarBook
from services.core.domain.calendar import VN_TZ
from services.core.domain.deadlines import TimeLimit, TimeUnit
from services.core.runtime.consumer import typed_payload
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import free_port
from services.core.runtime.kafka import DOSSIER_TOPIC
from services.core.runtime.settings import Settings
from services.intake.domain.model import Dossier, Procedure
from services.notifier import handlers
from services.notifier.adapters import repository as repo
from services.notifier.app import composer_from
from services.notifier.dispatch import DispatchSettings
from services.notifier.domain.decisions import DossierRef, on_dossier_event

NAME = "notifier_send_rate"
TITLE = "Notifier send rate"
ROW = (
    f"| [{TITLE}](#{common.slug(TITLE)}) | `bench/{NAME}.py` | SMS a second the notifier gets to a "
    "fast gateway: from stored notices and from dossier events, PostgreSQL and SQLite, "
    "unlimited and at the default rate |"
)
DEFAULT_NOTICES = 2000  # stored notices per case
DEFAULT_EVENTS = 2000  # dossier events per case
DEFAULT_RATE_NOTICES = 300  # at 20 a second: 15 s
# The profiled case: py-spy for PROFILE_SECONDS from the first SMS, with events enough to
# keep the notifier sending for most of it (600 were sent within the first of its 10 s).
PROFILE_SECONDS = 4.0
PROFILE_EVENTS = 8000
DEFAULT_SMS_RATE = Settings().sms_rate_per_second  # 20 a second, the settings' default
PRELOAD_BATCH = 500  # notices stored per transaction while preloading
STALLED_AFTER = 20.0  # seconds without a new SMS: the run is over
SEED = 20261125


@dataclass(frozen=True)
class Case:
    database: str  # "postgres" | "sqlite"
    mode: str  # "queued" | "events"
    sms_rate: float  # MOTCUA_SMS_RATE_PER_SECOND; 0 = unlimited
    notices: int
    profile: bool = False  # py-spy the notifier (an extra case: sampling costs CPU)

    @property
    def title(self) -> str:
        rate = "unlimited" if self.sms_rate <= 0 else f"{self.sms_rate:g}/s (default)"
        what = "stored notices" if self.mode == "queued" else "dossier events on Kafka"
        db = "PostgreSQL" if self.database == "postgres" else "SQLite"
        return f"{db}, {what}, rate {rate}"


def default_cases(
    notices: int,
    events: int,
    default_rate_notices: int,
    profile: bool = False,
    profile_events: int = PROFILE_EVENTS,
) -> list[Case]:
    cases = [
        Case("postgres", "queued", 0, notices),
        Case("postgres", "events", 0, events),
        Case("sqlite", "queued", 0, notices),
        Case("sqlite", "events", 0, events),
        Case("postgres", "queued", DEFAULT_SMS_RATE, default_rate_notices),
    ]
    if profile:  # the consumer and the dispatcher at work together
        cases.append(Case("postgres", "events", 0, profile_events, profile=True))
    return cases


# -- the dossiers ---------------------------------------------------------------------------


def _procedure(spec: ProcedureSpec) -> Procedure:
    value, unit = spec.time_limit
    cutoff = wall.fromisoformat(spec.cutoff) if spec.cutoff else None
    return Procedure(
        spec.code, spec.name, spec.agency, TimeLimit(value, TimeUnit(unit)), cutoff,
        spec.postal_return,
    )  # fmt: skip


def received_envelopes(count: int, now: datetime, first_serial: int = 1) -> list[Envelope]:
    """`dossier.received` envelopes as the intake publishes them: each dossier received at
    `now` through the intake's domain, its applicant with a phone of their own."""
    applicants = Applicants(SEED)
    calendar = CalendarBook().for_schedule_dict(None)
    procedures = [_procedure(spec) for spec in PROCEDURES]
    envelopes = []
    for serial in range(first_serial, first_serial + count):
        procedure = procedures[serial % len(procedures)]
        body = applicants.body(serial, PROCEDURES[serial % len(PROCEDURES)])
        person = body["applicant"]
        address = body.get("return_address")
        dossier = Dossier.receive(
            id=str(uuid.uuid4()),
            code=f"{procedure.agency_code}-{now:%Y%m%d}-{serial:04d}",
            procedure=procedure,
            applicant=Applicant(
                full_name=person["full_name"],
                phone=common.e164_of(serial),
                id_number=person["id_number"],
                email=person.get("email"),
            ),
            channel=body["channel"],
            return_method=body["return_method"],
            return_address=Address.model_validate(address) if address else None,
            received_at=now,
            calendar=calendar,
            office_schedule={},
        )
        event = dossier.events[0]
        envelopes.append(
            Envelope(
                event_id=str(uuid.uuid4()),
                type=EVENT_TYPE_OF[type(event)],
                occurred_at=event.at,
                dossier_id=dossier.id,
                dossier_code=dossier.code,
                agency_code=dossier.agency_code,
                payload=event.model_dump(mode="json"),
            )
        )
    return envelopes


async def store_notices(url: str, envelopes: Sequence[Envelope], now: datetime) -> int:
    """What the notifier's consumer does with each event (`handlers.handle_dossier_event`:
    the card, the decision, the notice), PRELOAD_BATCH events a transaction."""
    composer = composer_from(Settings(quiet_hours=""))
    engine = create_engine(url)
    stored = 0
    try:
        for batch in common.chunks(envelopes, PRELOAD_BATCH):
            async with engine.begin() as conn:
                for envelope in batch:
                    payload = typed_payload(envelope, parse_payload)
                    ref = DossierRef(
                        envelope.dossier_id, envelope.dossier_code, envelope.agency_code
                    )
                    decision = on_dossier_event(
                        None, ref, envelope.event_id, payload, now, composer.policy
                    )
                    if decision.card is not None:
                        await repo.save_card(conn, decision.card, now)
                    stored += await handlers.store_notices(conn, composer, decision.notices, now)
    finally:
        await engine.dispose()
    return stored


async def publish_events(bootstrap: str, envelopes: Sequence[Envelope]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send(
                DOSSIER_TOPIC,
                envelope.model_dump_json().encode(),
                key=envelope.dossier_id.encode(),
                headers=[("event_id", envelope.event_id.encode())],
            )
        await producer.flush()
    finally:
        await producer.stop()


# -- one run --------------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: Case
    preloaded: int  # notices stored, or events published
    arrivals: list[Arrival] = field(default_factory=list)
    ready_at: float = 0.0  # time.monotonic() the notifier answered /readyz
    cpu: CpuShares | None = None  # from the first SMS to the last
    counted_from: int = 0  # SMS already at the gateway when the CPU began to be counted
    exit_code: int | None = None
    statuses: dict[str, int] = field(default_factory=dict)
    profile: Profile | None = None

    @property
    def first(self) -> list[Arrival]:
        return sorted((a for a in self.arrivals if a.first), key=lambda a: a.at)

    @property
    def sent(self) -> int:
        return len(self.first)

    @property
    def duplicates(self) -> int:
        return len(self.arrivals) - self.sent

    def rate(self) -> float:
        """SMS a second from the first arrival to the last."""
        first = self.first
        if len(first) < 2:
            return float("nan")
        return (len(first) - 1) / (first[-1].at - first[0].at)

    def steady_rate(self) -> float:
        """SMS a second between the 10th and the 90th percentile arrival (start and end
        effects left out)."""
        first = self.first
        if len(first) < 10:
            return self.rate()
        lo, hi = len(first) // 10, len(first) * 9 // 10
        return (hi - lo) / (first[hi].at - first[lo].at)

    def busiest_second(self) -> int:
        first = self.first
        if not first:
            return 0
        start = first[0].at
        counts: dict[int, int] = {}
        for a in first:
            counts[int(a.at - start)] = counts.get(int(a.at - start), 0) + 1
        return max(counts.values())

    def gaps(self) -> float:
        """The longest wait between two SMS."""
        at = [a.at for a in self.first]
        return max((b - a for a, b in zip(at, at[1:], strict=False)), default=0.0)

    def cpu_ms(self, group: str) -> float:
        """Milliseconds of CPU an SMS, over the SMS sent while the CPU was counted."""
        counted = self.sent - self.counted_from
        if self.cpu is None or counted <= 0:
            return float("nan")
        return self.cpu.cores(group) * self.cpu.wall / counted * 1000


@dataclass(frozen=True)
class Options:
    cases: Sequence[Case]
    database_url: str
    folder: Path
    drain_timeout: float = 300.0
    ceiling_seconds: float = common.CEILING_SECONDS
    ceiling_warm_up: float = common.CEILING_WARM_UP


async def run_case(
    case: Case, options: Options, say: Callable[[str], None], ceiling: Ceiling | None = None
) -> CaseResult:
    folder = options.folder / f"{case.database}-{case.mode}-{case.sms_rate:g}"
    if case.database == "postgres":
        await common.fresh_postgres(options.database_url, ["notifier"])
        url = options.database_url
    else:
        url = (await common.fresh_sqlite(folder / "db", ["notifier"]))["notifier"]
    broker = await common.start_broker(folder)
    gateway = GatewayProcess()
    notifier: ServiceProcess | None = None
    code: int | None = None
    try:
        now = datetime.now(VN_TZ)
        envelopes = received_envelopes(case.notices, now)
        if case.mode == "queued":
            preloaded = await store_notices(url, envelopes, now)
        else:
            await publish_events(broker.bootstrap, envelopes)
            preloaded = len(envelopes)
        result = CaseResult(case, preloaded)
        port = free_port()
        env = common.service_env(
            {
                "notifier_database_url": url,
                "kafka_bootstrap": broker.bootstrap,
                "sms_gateway_url": gateway.url,
                "sms_rate_per_second": f"{case.sms_rate:g}",
                "quiet_hours": "",
                "callback_base_url": f"http://127.0.0.1:{port}",
                "data_dir": str(folder / "var"),
            }
        )
        notifier = ServiceProcess("notifier", env, folder / "notifier.log", port=port)
        notifier.spawn()
        groups: dict[str, Sequence[int] | str] = {
            "notifier": [notifier.pid],
            "gateway": [gateway.pid],
            "postgres": "postgres",
            "broker": [broker.pid] if broker.pid else [],
            "generator": [os.getpid()],
        }
        # CPU from the first SMS on: start-up (imports, the consumer group's join) is not
        # the sending. Not from readiness: with notices waiting the dispatcher starts with
        # the service and keeps its event loop so busy that /readyz may answer only after
        # the last SMS, which left the stored-notices cases with no CPU counted.
        ready = asyncio.create_task(notifier.wait_ready())
        try:
            result.counted_from = await first_sms(gateway, ready, options.drain_timeout)
            before = CpuSnapshot.take()
            recorder = None
            if case.profile:
                recorder = Recorder([notifier.pid], PROFILE_SECONDS, folder)
            await gateway.wait_for(
                case.notices,
                options.drain_timeout,
                stalled_after=STALLED_AFTER,
                every=0.05,  # the CPU's wall ends this close after the last SMS
                stall_before_first=False,
            )
            after = CpuSnapshot.take()
            if recorder is not None:
                result.profile = await recorder.result()
            result.cpu = common.cpu_between(before, after, groups)
            await ready
            result.ready_at = time.monotonic()
        finally:
            ready.cancel()
        result.arrivals = await gateway.arrivals()
        result.statuses = await settled_statuses(url, case.notices)
        say(case_line(result, ceiling))
    finally:
        if notifier is not None:
            code = notifier.stop()
        gateway.stop()
        await broker.stop()
    result.exit_code = code
    return result


async def first_sms(gateway: GatewayProcess, ready: asyncio.Task[None], within: float) -> int:
    """The gateway's count once the first SMS came (0 after `within` seconds); raises at
    once if the notifier did not start."""
    deadline = time.monotonic() + within
    while True:
        count, _ = await gateway.count()
        if count or time.monotonic() > deadline:
            return count
        if ready.done():
            ready.result()  # the notifier exited or never got ready: say why
        await asyncio.sleep(0.02)  # polling the gateway's count


async def settled_statuses(url: str, expected: int, within: float = 10.0) -> dict[str, int]:
    """The notices by status once `expected` are accepted (the last SMS may have arrived
    before the notifier committed it), or as they are after `within` seconds."""
    statuses = await common.poll(
        lambda: common.notice_statuses(url), lambda s: s["accepted"] >= expected, within, 0.2
    )
    return dict(statuses)


def case_line(r: CaseResult, ceiling: Ceiling | None = None) -> str:
    share = f" ({ceiling.share(r.rate()):.0%} of the ceiling)" if ceiling else ""
    return (
        f"{r.case.title}: {r.sent}/{r.preloaded} SMS, {r.rate():.1f}/s overall{share}, steady "
        f"{r.steady_rate():.1f}/s, busiest second {r.busiest_second()}, duplicates "
        f"{r.duplicates}; CPU {r.cpu.describe() if r.cpu else '?'}"
    )


@dataclass
class Run:
    options: Options
    cases: list[CaseResult]
    load_average: tuple[float, float]
    ceiling: Ceiling | None = None  # measured at the start of the run


async def run(options: Options, say: Callable[[str], None] = lambda _: None) -> Run:
    load_at_start = common.load_average()
    ceiling = await common.measure_ceiling(options.ceiling_seconds, warm_up=options.ceiling_warm_up)
    say(ceiling.line())
    if any(c.database == "postgres" for c in options.cases):
        await common.ensure_database(options.database_url)
    results = [await run_case(case, options, say, ceiling) for case in options.cases]
    return Run(options, results, (load_at_start, common.load_average()), ceiling)


def problems(result: Run) -> list[str]:
    found = result.ceiling.problems() if result.ceiling else []
    for r in result.cases:
        if r.sent != r.case.notices:
            found.append(f"{r.case.title}: {r.sent} of {r.case.notices} SMS arrived")
        if r.duplicates:
            found.append(f"{r.case.title}: {r.duplicates} SMS sent twice")
        if r.statuses.get("accepted", 0) != r.case.notices:
            found.append(f"{r.case.title}: notices by status {r.statuses}")
        if r.exit_code != 0:
            found.append(f"{r.case.title}: exit status {r.exit_code}")
    return found


# -- the README section -----------------------------------------------------------------------


def cases_table(result: Run) -> str:
    lines = [
        "| Database | Preloaded | SMS rate setting | SMS at the gateway | Sent twice "
        "| SMS/s, first to last | … as a share of the ceiling | SMS/s, steady (10–90 %) "
        "| Busiest second | Longest gap | CPU notifier | CPU PostgreSQL | CPU gateway "
        "| CPU ms an SMS: notifier | PostgreSQL |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    ceiling = result.ceiling
    for r in result.cases:
        c = r.case
        if c.profile:
            continue
        db = "PostgreSQL" if c.database == "postgres" else "SQLite"
        what = "notices" if c.mode == "queued" else "events"
        setting = "0 (unlimited)" if c.sms_rate <= 0 else f"{c.sms_rate:g} (default)"
        cpu = r.cpu
        shares = (
            " | ".join(f"{cpu.cores(g):.2f}" for g in ("notifier", "postgres", "gateway"))
            if cpu
            else "? | ? | ?"
        )
        lines.append(
            f"| {db} | {r.preloaded:,} {what} | {setting} | {r.sent:,} | {r.duplicates} "
            f"| **{r.rate():,.1f}** | {f'{ceiling.share(r.rate()):.0%}' if ceiling else '–'} "
            f"| {r.steady_rate():,.1f} | {r.busiest_second()} "
            f"| {common.ms(r.gaps())} | {shares} | {r.cpu_ms('notifier'):.1f} "
            f"| {r.cpu_ms('postgres'):.1f} |"
        )
    return "\n".join(lines)


def section(
    result: Run,
    command: str,
    today: date,
    host: dict[str, str],
    pg: dict[str, str] | None,
    analysis: str = "",
) -> str:
    measured = [r for r in result.cases if not r.case.profile]
    unlimited = [r for r in measured if r.case.sms_rate <= 0]
    limited = [r for r in measured if r.case.sms_rate > 0]
    headline = []
    for r in unlimited:
        where = r.case.title.split(", rate")[0]
        if result.ceiling:
            where += f"; {result.ceiling.share(r.rate()):.0%} of the ceiling"
        headline.append(f"{r.rate():,.0f} SMS/s ({where})")
    if result.ceiling:
        headline[-1] += f"; ceiling {result.ceiling.rate:,.0f} req/s in this run"
    parts = [
        f"## {TITLE}",
        "",
        "What the notifier can send when the gateway is fast and the token bucket does not "
        "hold it back, and what the default bucket lets through.",
        "",
        "**Result:** unlimited, " + "; ".join(headline) + "."
        + "".join(
            f" At the default `MOTCUA_SMS_RATE_PER_SECOND={r.case.sms_rate:g}`: "
            f"{r.rate():,.1f} SMS/s, as set."
            for r in limited
        ),
        "",
        cases_table(result),
        "",
        result.ceiling.sentence() if result.ceiling else "",
        "",
        common.date_line(today),
        common.machine_line(host),
        f"- {common.versions_line(host)}; SQLite {host['sqlite']}; broker {host['kafka']}",
    ]  # fmt: skip
    if pg:
        parts.append(common.postgres_line(pg, "shared_buffers", "synchronous_commit"))
    parts += [
        common.load_line(result.load_average),
        *common.command_lines(
            "empties the notifier's tables, starts a broker, a fake gateway and the notifier "
            "for each case, rewrites this section",
            command,
        ),
        "",
        "### Method",
        "",
        "- **Data.** Each case preloads N receipts of dossiers received now through the "
        f"intake's domain (`Dossier.receive`, {len(PROCEDURES)} procedures, realistic "
        "applicants each with a phone of their own). *notices*: the notifier's consumer step "
        "run beforehand — `on_dossier_event`, the card and the notice stored with the "
        "notifier's repository and composer (the default Vietnamese template, without "
        f"diacritics), {PRELOAD_BATCH} to a transaction — so the notices wait, due, in the "
        "notices table. *events*: the `dossier.received` envelopes published to "
        "`motcua.dossier.v1` (3 partitions, keyed by dossier id) instead, so the notifier "
        "consumes, decides, stores and sends them all.",
        "- **Then** `python -m services.cli notifier` starts as a process (uvicorn, one worker) "
        "with `MOTCUA_SMS_GATEWAY_URL` pointing at the fake gateway (`bench/fake_gateway.py`, "
        "its own process, one asyncio protocol, about 60 µs of CPU a message, answers at "
        "once), `MOTCUA_QUIET_HOURS` empty and `MOTCUA_SMS_RATE_PER_SECOND` as in the table "
        "(0: no token bucket, so the notifier itself is measured). The dispatcher claims "
        f"{DispatchSettings.batch_size} due notices at a time, sends them "
        f"{DispatchSettings.concurrency} at once (`DispatchSettings`' defaults) and commits "
        "the batch's outcomes in one transaction.",
        "- **Measured** at the gateway: *first to last* is (N − 1) / (last arrival − first "
        "arrival); *steady* leaves out the first and last tenth of the SMS; *longest gap*: the "
        "longest wait between two SMS. CPU is counted from the first SMS to the last (not "
        "the start-up), per SMS sent in that time.",
        "- **Checked:** every notice reached the gateway once (no request id twice), every "
        "notice ends `accepted`, the notifier stops with status 0.",
    ]  # fmt: skip
    if result.ceiling:
        parts.append(
            common.ceiling_method(result.ceiling, "each case's SMS/s (first to last)")
            + " Like the ceiling's endpoint, the notifier is one process running Python on "
            "one core at most; each of its SMS is an HTTP request it sends (aiohttp) and its "
            "database work."
        )
    profiled = [r for r in result.cases if r.case.profile and r.profile]
    if profiled:
        parts.append(
            f"- **Profile.** The PostgreSQL events case once more, with "
            f"{profiled[0].case.notices:,} events, the notifier sampled by py-spy for "
            f"{PROFILE_SECONDS:g} s from its first SMS (`record --rate 200 --nonblocking "
            "--threads`; categories as in the intake benchmark)."
        )
    if analysis:
        parts += ["", "### What limits it", "", analysis.strip()]
    for r in profiled:
        assert r.profile is not None
        parts += [
            "",
            f"### Profile: {r.case.title}",
            "",
            f"That run: {r.rate():,.1f} SMS/s; {r.profile.samples:,} samples over "
            f"{r.profile.seconds:g} s (threads active {r.profile.busy():.0%} of the time).",
            "",
            profile_tables(r.profile),
        ]
    return "\n".join(parts)


# -- what limits it ---------------------------------------------------------------------------


def analysis(result: Run) -> str:
    """What limits the notifier's rate, from this run's figures."""
    measured = [r for r in result.cases if not r.case.profile and r.sent]
    unlimited = [r for r in measured if r.case.sms_rate <= 0]
    limited = [r for r in measured if r.case.sms_rate > 0]
    if not unlimited:
        return ""
    parts = [
        "**CPU and waiting.** "
        + "; ".join(_cpu_or_waiting(r) for r in unlimited)
        + ". The notifier is one process running Python on one core at most: its rate is "
        "about 1,000 / (its ms of CPU an SMS) when it is CPU-bound, and lower when it spends "
        "part of each SMS waiting. The gateway is not the limit (about 60 µs of CPU a "
        "message, answering at once).",
        "**Stored notices** measure the dispatcher alone: it claims up to "
        f"{DispatchSettings.batch_size} due notices in one transaction (read from the "
        "waiting notices' index in the claim's order, so a claim costs the same whatever the "
        f"backlog), sends them {DispatchSettings.concurrency} at a time through aiohttp "
        "(`adapters/http_calls.py`: about 0.1 ms of CPU a request on this machine, where "
        "httpx, which it replaced, took 0.8 ms), and commits the batch's outcomes in one "
        "transaction (one executemany UPDATE of the notices, one INSERT of their history "
        "rows, one DELETE of the early receipts they match): an HTTP call an SMS and a few "
        "statements a batch. The three steps of a batch follow one another: while the "
        "database claims or commits, the notifier has nothing else to do, which is most of "
        "the *partly idle* above on PostgreSQL (two transactions a batch, each with its round "
        "trips and a commit that waits for the WAL to be flushed). Claiming the next batch "
        "and committing the last while one is sent would overlap them (not done). "
        "**Dossier events** add the consumer in the same process: it takes the records in "
        "batches and applies each topic's run of them in one transaction (the cards "
        "concerned read in one query, each event decided in order in memory, the cards, "
        "notices and history written in bulk, the notices' INSERT ... ON CONFLICT DO NOTHING "
        "RETURNING as the de-duplication), commits the offsets once a batch and wakes the "
        "dispatcher once a run; rendering each notice's text is the rest of its cost. That is "
        "the rate the notifier sustains behind the intake, and what the 200 dossiers/s of "
        "the receipt benchmark would need. A case marked *partly idle* above waited part of "
        "the time (for the database, the broker or the gateway) with nothing else to do; "
        "another replica in the consumer group would take some of the partitions and "
        "overlap them (not measured here).",
    ]
    parts.append(
        "**A real gateway answers in tens to hundreds of milliseconds**, not at once like this "
        f"one: with {DispatchSettings.concurrency} requests in flight the dispatcher then "
        f"sends at most {DispatchSettings.concurrency} / latency SMS a second "
        f"({DispatchSettings.concurrency / 0.1:,.0f}/s at 100 ms) whatever its CPU. This "
        "benchmark measures the notifier's own cost, not that bound (arithmetic, not measured)."
    )
    if importlib.util.find_spec("sniffio") is None:
        parts.append(
            "**Seen in the profiles:** httpcore asks `current_async_library()` for every lock and "
            "cancellation shield it makes, which tries `import sniffio`; sniffio is not "
            "installed here, and a failed import is not cached, so each try searches `sys.path` "
            "again (the `importlib` / `_path_stat` frames under *other*; about 40 µs a try on "
            "this machine). Installing `sniffio` would turn that into a dictionary lookup; it "
            "is not a dependency of motcua, so it is only reported here."
        )
    for r in limited:
        parts.append(
            f"**At the default `MOTCUA_SMS_RATE_PER_SECOND={r.case.sms_rate:g}`** the token "
            f"bucket holds the notifier to {r.steady_rate():,.1f} SMS/s after the first "
            f"burst of {int(r.case.sms_rate)} (busiest second {r.busiest_second()}): whatever "
            "the notifier could do, a province texting 200 receipts a second must raise it "
            "to what its gateway contract allows, or the queue grows by the difference every "
            "second (nothing is lost: the notices wait, due, in the table)."
        )
    for r in result.cases:
        if r.case.profile and r.profile:
            prof = r.profile
            categories = sorted(prof.by_category.items(), key=lambda kv: -kv[1])[:4]
            top = ", ".join(f"{n} {c / max(prof.samples, 1):.0%}" for n, c in categories)
            parts.append(f"Profile, {r.case.title}: {top}.")
    return "\n\n".join(parts)


def _cpu_or_waiting(r: CaseResult) -> str:
    cores = r.cpu.cores("notifier") if r.cpu else float("nan")
    wall = 1000 / r.steady_rate()
    cpu = r.cpu_ms("notifier")
    state = "busy" if cores >= 0.9 else "partly idle"
    return (
        f"{r.case.title.split(', rate')[0]}: {r.rate():,.0f}/s, {cpu:.1f} ms of the "
        f"notifier's CPU an SMS against {wall:.1f} ms of wall time an SMS, the notifier at "
        f"{cores:.2f} cores ({state})"
    )


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = common.arguments(NAME, __doc__)
    parser.add_argument("--notices", type=int, default=DEFAULT_NOTICES, help="stored notices")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="dossier events")
    parser.add_argument("--profile", action="store_true", help="py-spy two more cases")
    parser.add_argument("--default-rate-notices", type=int, default=DEFAULT_RATE_NOTICES)
    parser.add_argument(
        "--quick", action="store_true", help="50 notices a case, the ceiling for 2 s (a smoke run)"
    )
    common.output_arguments(parser, keep="logs and SQLite files")
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace, command: str) -> int:
    if args.profile and not have_py_spy():
        return 2
    notices = 50 if args.quick else args.notices
    events = 50 if args.quick else args.events
    limited = 30 if args.quick else args.default_rate_notices
    profiled = 50 if args.quick else PROFILE_EVENTS
    cases = default_cases(notices, events, limited, args.profile, profiled)
    with common.work_folder("notifier", args.keep, "logs and SQLite files") as folder:
        options = Options(cases, args.database_url, folder, **common.ceiling_options(args.quick))
        result = await run(options, say=lambda line: print(line, flush=True))
        pg = None
        if any(c.database == "postgres" for c in options.cases):
            pg = await common.postgres_info(args.database_url)
    return common.conclude(
        args, NAME, ROW, problems(result),
        lambda host: section(result, command, date.today(), host, pg, analysis(result)),
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return common.main(NAME, argv, parse_args, main_async)


if __name__ == "__main__":
    sys.exit(main())
