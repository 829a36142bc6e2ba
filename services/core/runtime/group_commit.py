"""Group commit: the writes of many concurrent requests in one transaction.

Why. A request that writes a few rows in a transaction of its own pays, besides its rows, a
connection checkout, BEGIN and COMMIT (on SQLite the write lock and the WAL append, on
PostgreSQL a WAL flush) and, per statement, the driver's and SQLAlchemy's CPU; on SQLite
every statement also crosses from the event loop to aiosqlite's thread and back. That
fixed cost, not the database, limited `POST /dossiers` to 31-143 a second on two cores
(bench/README.md, "Intake throughput"). Here the requests that arrive while a transaction
is being written wait for the next one, and all of them share it: BEGIN and COMMIT are paid
once per batch, and the rows the units defer (`Batch.insert`) are inserted with one
statement per table.

How. A caller hands a *unit of work* to `GroupCommit.run` and awaits its own result. One
worker task takes whatever has queued (up to `max_batch`), opens one transaction and runs
the units one after another on its connection, then inserts the deferred rows and commits.

- Each caller gets its own result or its own error. When a unit raises, the whole
  transaction is rolled back and the batch runs again with each unit inside its own
  SAVEPOINT: the failing unit gets its error (and nothing of it is written), the others are
  committed. A unit must therefore be safe to run twice: it reads and writes only through
  the connection and `Batch`, and keeps nothing of a try that was rolled back. In that
  second round each unit has a `Batch` of its own, flushed within its savepoint.
- When the COMMIT fails, or the database fails under a unit (a transient error,
  `is_transient_database_error`), every caller of the batch gets that error and nothing of
  the batch is written.
- Units run one after another on one connection, in the order of their `order` key, then of
  arrival: a unit sees what the units before it in the batch wrote (e.g. an idempotency key,
  a counter). Give as `order` the row a unit locks (e.g. the counter it increments): every
  batch, of every process, then takes its locks in the same order, and two batches cannot
  deadlock on them (on PostgreSQL a deadlock aborts one batch with a transient error: 503
  for all its callers). With `counters`, the `order` keys name counters, and a batch takes
  (or reads) and locks all of its own in one statement before its first unit runs
  (`Counters`).
- `on_commit` is called once per committed batch (e.g. to wake an outbox relay).
- `linger`: a batcher that was idle waits up to that long after the first unit arrives, so
  that the units arriving meanwhile share its transaction (PostgreSQL's `commit_delay`, in
  the application). Under load the batcher is never idle and never waits. At low rates a
  transaction of one unit costs several times what the unit's own rows do: at 200 receipts
  a second a request comes every 5 ms, and the intake paid a transaction per dossier.
  The wait ends as soon as as many units wait as the last batch held (at least two).
  Callers who each wait for their answer before sending again come back together after a
  batch, all of them within a moment: the wait ends when they are all back, not after
  `linger` (a wait of `linger` each time cost a third of the throughput at 4-16 such
  callers, measured). A caller alone who waits for each answer gathers nobody in a wait and
  would only be slowed by it: the batcher keeps an average of what its waits gathered and
  stops waiting while they gather nothing, trying again ever more rarely.
- `trickle` (with `trickle_batch`): before a batch (after that wait, or after the last
  batch, when units came while it committed), the batcher may go on waiting, until `trickle`
  after the first of them arrived, while fewer than `trickle_batch` units wait. That is for
  requests that come one by one, each on its own time (clerks at many counters): the wait
  above ends on the second of them, so at 200 receipts a second it made transactions of one
  or two dossiers, where 25 ms gather five or six (measured on PostgreSQL at 200 receipts a
  second, eight alternating pairs of runs with and without it: the intake's CPU a dossier
  fell by 17-31%, that of every process of the pipeline by 7-23%). Callers who come back
  together are all in by then, or come within `turnaround` of their last answers, and it
  gathers none of them: it is judged apart from the first wait, by the units it gathered
  that came later than that, and stops, as that one does, while it gathers none. Nor does
  it wait after a batch of `trickle_batch` units or more: units are not coming one by one.
- After a batch of `trickle_batch` units or more, when fewer units wait than it held, the
  batcher waits up to `linger` again, until as many wait (a *regroup*). Callers who wait for
  their answers can fall into two groups that take turns: one group's units arrive while the
  other's batch is written, and the batcher, never idle, ran them at once, before the
  callers it had just answered were back; each batch then gathered the other group, for
  good. Seen with 32 clerks on PostgreSQL as batches of 8 and 24 in turn: 1,083 receipts a
  second, against 1,257-1,357 in three runs with batches of 32 beside it. The regroup waits
  for the callers it has just answered, and is judged apart, like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.core.runtime.database import is_transient_database_error

R = TypeVar("R")
log = structlog.get_logger(__name__)

# `linger`'s bookkeeping (and `trickle`'s, apart): waiting goes on while its waits gathered at
# least LINGER_WORTH units on average (each wait weighing LINGER_WEIGHT in that average).
# Otherwise the batcher waits again after LINGER_PROBE_EVERY idle wake-ups, to notice that
# callers came back, and after twice as many each time such a wait gathers nobody, up to
# LINGER_PROBE_MAX. A script that sends one unit after the other's answer (an import) then
# pays 9 waits in 3,000 units, not 189: measured on SQLite with empty units, 0.33 ms a unit
# against 0.97 with a wait every sixteen and 0.30 with no linger at all.
LINGER_WORTH = 0.5
LINGER_WEIGHT = 0.3
LINGER_PROBE_EVERY = 16
LINGER_PROBE_MAX = 1024
# A unit that arrives within this of the last batch's answers is, for `trickle`'s bookkeeping,
# a caller of that batch coming back, not one more unit coming on its own time: callers that
# wait for their answers, split over two batches (half arriving while the other half's batch
# commits), would otherwise make every trickle look fruitful while it only delays them (four
# such callers over HTTP: a third of the receipts a second, measured). Back over loopback
# they are a millisecond or two apart.
TRICKLE_TURNAROUND = 0.005


@dataclass
class _WaitWorth:
    """Whether one kind of wait for more units has been gathering any (see LINGER_WORTH)."""

    average: float = 1.0  # units a wait gathered besides those waiting when it began
    idle: int = 0  # chances to wait since the last wait
    probe_after: int = LINGER_PROBE_EVERY

    def worth_waiting(self) -> bool:
        self.idle += 1
        if self.average >= LINGER_WORTH:
            return True
        if self.idle < self.probe_after:
            return False
        self.probe_after = min(LINGER_PROBE_MAX, self.probe_after * 2)
        return True

    def gathered(self, units: int) -> None:
        self.idle = 0
        self.average += LINGER_WEIGHT * (units - self.average)
        if units:
            self.probe_after = LINGER_PROBE_EVERY


@dataclass(frozen=True)
class Counters:
    """A table of counters that units count on (e.g. the day's dossier codes per agency).

    `read` returns the current values of the given keys, creating missing ones at 0, and
    locks their rows until commit; `write` stores new values. Both take many keys at once:
    a batch reads the counters its units will use in one statement (`GroupCommit(counters=)`,
    in key order, so batches of every process lock them in one order) and writes them back in
    one, whatever the number of units."""

    read: Callable[[AsyncConnection, Sequence[str]], Awaitable[Mapping[str, int]]]
    write: Callable[[AsyncConnection, Mapping[str, int]], Awaitable[None]]
    # Optional: add the given amounts to these counters (creating them at 0), lock them, and
    # return their new values, in one statement. A batch then claims up front as many values
    # as it has units of each counter, and writes a counter back only when its units used
    # fewer (an idempotent replay takes no code): one statement a batch instead of two.
    claim: Callable[[AsyncConnection, Mapping[str, int]], Awaitable[Mapping[str, int]]] | None = (
        None
    )


class Batch:
    """What a unit wants written at the end of its batch (or of its savepoint): rows, grouped
    by table so that a batch inserts each table's rows with one executemany, and counters,
    read once and written once per batch."""

    def __init__(self) -> None:
        self._rows: dict[sa.Table, list[dict[str, Any]]] = {}
        self._values: dict[tuple[Counters, str], int] = {}
        self._dirty: set[tuple[Counters, str]] = set()
        self._claimed: dict[tuple[Counters, str], int] = {}  # the value stored by `claim`

    def insert(self, table: sa.Table, *rows: dict[str, Any]) -> None:
        self._rows.setdefault(table, []).extend(rows)

    async def preload(self, conn: AsyncConnection, counters: Counters, keys: Sequence[str]) -> None:
        """Read (and lock) these counters now, in one statement, in the order given."""
        missing = [key for key in keys if (counters, key) not in self._values]
        if missing:
            for key, value in (await counters.read(conn, missing)).items():
                self._values[(counters, key)] = value

    async def claim(
        self, conn: AsyncConnection, counters: Counters, amounts: Mapping[str, int]
    ) -> None:
        """Take (and lock) `amounts[key]` values of each counter now, in one statement, in
        the order given; those left unused are given back when the batch is flushed."""
        if not amounts:
            return
        if counters.claim is None:
            await self.preload(conn, counters, list(amounts))
            return
        for key, value in (await counters.claim(conn, amounts)).items():
            slot = (counters, key)
            self._values[slot] = value - amounts[key]
            self._claimed[slot] = value

    async def next_value(self, conn: AsyncConnection, counters: Counters, key: str) -> int:
        """The counter `key` plus one. Read (and locked) at its first use in the batch unless
        preloaded; its last value is stored when the batch (or the unit's savepoint) is
        flushed. Nothing of a failed batch or unit is kept, so the values stay gapless."""
        slot = (counters, key)
        if slot not in self._values:
            await self.preload(conn, counters, [key])
        value = self._values[slot] = self._values[slot] + 1
        self._dirty.add(slot)
        return value

    async def flush(self, conn: AsyncConnection) -> None:
        rows, self._rows = self._rows, {}
        for table, values in rows.items():
            if values:
                await conn.execute(_insert_of(table), values)
        dirty, self._dirty = self._dirty, set()
        claimed, self._claimed = self._claimed, {}
        by_table: dict[Counters, dict[str, int]] = {}
        for slot in sorted(dirty | claimed.keys(), key=lambda slot: slot[1]):
            value = self._values[slot]
            if claimed.get(slot) != value:  # not already stored by its claim
                counters, key = slot
                by_table.setdefault(counters, {})[key] = value
        for counters, values in by_table.items():
            await counters.write(conn, values)


_INSERTS: dict[sa.Table, sa.Insert] = {}


def _insert_of(table: sa.Table) -> sa.Insert:
    # Built once per table: building a statement costs about twice what running it does.
    insert = _INSERTS.get(table)
    if insert is None:
        insert = _INSERTS[table] = table.insert()
    return insert


Unit = Callable[[AsyncConnection, Batch], Awaitable[R]]


@dataclass
class _Pending(Generic[R]):
    unit: Unit[R]
    future: asyncio.Future[R]
    order: str = ""
    arrived: float = 0.0  # the loop's time when it was queued


@dataclass
class BatchStats:
    """What the batches were, for tests and metrics."""

    batches: int = 0
    sizes: list[int] = field(default_factory=list)
    isolated: int = 0  # batches run again, a SAVEPOINT per unit, because a unit failed
    lingers: int = 0  # waits for more units after an idle moment (`linger`)
    trickles: int = 0  # waits for units coming one by one after those (`trickle`)
    regroups: int = 0  # waits for the last batch's callers to come back (see `_regroup`)

    def record(self, size: int) -> None:
        self.batches += 1
        if len(self.sizes) < 10_000:
            self.sizes.append(size)


class _UnitFailed(Exception):
    """A unit raised in the fast path: run the batch again with a savepoint per unit."""


class GroupCommit:
    """Coalesces units of work from concurrent callers into one transaction per batch."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_batch: int = 256,
        on_commit: Callable[[], None] | None = None,
        counters: Counters | None = None,
        linger: float = 0.0,
        trickle: float = 0.0,
        trickle_batch: int = 8,
        turnaround: float = TRICKLE_TURNAROUND,
    ) -> None:
        self.engine = engine
        # The counters the units' `order` keys name, read for a batch in one statement.
        self.counters = counters
        self.max_batch = max_batch
        self.on_commit = on_commit or (lambda: None)
        self.linger = linger
        self.trickle = trickle
        self.trickle_batch = min(trickle_batch, max_batch)
        self.turnaround = turnaround
        self.stats = BatchStats()
        self._queue: list[_Pending[Any]] = []
        self._wakeup = asyncio.Event()
        self._enough = asyncio.Event()  # a wait for more units ends there: see `_wait_until`
        self._enough_at = max_batch  # how many waiting units end that wait
        self._linger_worth = _WaitWorth()
        self._trickle_worth = _WaitWorth()
        self._regroup_worth = _WaitWorth()
        self._last_size = 0  # units in the last batch run
        self._answered_at = float("-inf")  # the loop's time when the last batch was answered
        self._lingering = False
        self._open = asyncio.Event()
        self._open.set()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False

    async def run(self, unit: Unit[R], order: str = "") -> R:
        """Run `unit` in the next batch's transaction; its result once that has committed.
        Within a batch, units run sorted by `order` (then in arrival order)."""
        if self._closed:
            raise RuntimeError("group commit is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append(_Pending(unit, future, order, loop.time()))
        self._wakeup.set()
        if len(self._queue) >= self._enough_at:
            self._enough.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="group-commit")
        return await future

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def lingering(self) -> bool:
        """Whether the batcher is waiting for more units (`linger`, `trickle`, a regroup)."""
        return self._lingering

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Tests: no batch starts while held, so what is queued meanwhile is one batch."""
        self._open.clear()
        try:
            yield
        finally:
            self._open.set()

    async def close(self) -> None:
        """Stop the worker; callers still queued get an error."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("group commit closed"))
        self._queue.clear()

    async def _work(self) -> None:
        while True:
            await self._open.wait()
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                await self._gather()
                continue
            await self._trickle()
            await self._regroup()
            batch = self._queue[: self.max_batch]
            del self._queue[: self.max_batch]
            batch = [p for p in batch if not p.future.done()]  # callers that gave up
            batch.sort(key=lambda p: p.order)  # stable: arrival order within one key
            if batch:
                await self._run_batch(batch)  # every caller of it answered on return
                self._answered_at = asyncio.get_running_loop().time()

    async def _gather(self) -> None:
        """After an idle moment, wait up to `linger` for more units (see the module's text),
        while waiting has been gathering some; the wait ends once as many units wait as the
        last batch held (at least two)."""
        if not self.linger or not self._linger_worth.worth_waiting():
            return
        enough = min(self.max_batch, max(2, self._last_size))
        if len(self._queue) < enough:  # else they are all here already
            gathered = await self._wait_until(enough, self.linger)
            self.stats.lingers += 1
            self._linger_worth.gathered(gathered)

    async def _trickle(self) -> None:
        """Before a batch: wait on, until `trickle` after the first waiting unit arrived,
        while fewer than `trickle_batch` wait. Before every batch, not only after an idle
        moment: at a few hundred units a second one or two come while a batch commits, and
        the batcher, never idle, would otherwise run them at once, one or two at a time."""
        if not self.trickle or not self._queue or len(self._queue) >= self.trickle_batch:
            return
        if self._last_size >= self.trickle_batch:
            # Units do not come one by one when a batch that full was just run: under load,
            # callers waiting for their answers come back while the CPU is busy, later than
            # `turnaround` after them, and each trickle would hold them for the rest (32
            # such callers on PostgreSQL: a seventh fewer receipts a second, measured).
            return
        left = self._queue[0].arrived + self.trickle - asyncio.get_running_loop().time()
        if left <= 0 or not self._trickle_worth.worth_waiting():
            return
        first = len(self._queue)
        await self._wait_until(self.trickle_batch, left)
        self.stats.trickles += 1
        # What it gathered, leaving out the callers of the last batch coming back.
        since = self._answered_at + self.turnaround
        self._trickle_worth.gathered(sum(p.arrived > since for p in self._queue[first:]))

    async def _regroup(self) -> None:
        """After a batch of `trickle_batch` or more, before running fewer units than it
        held: wait up to `linger` until as many wait (see the module's text)."""
        if not self.linger or self._last_size < self.trickle_batch:
            return
        if not self._queue or len(self._queue) >= self._last_size:
            return
        if not self._regroup_worth.worth_waiting():
            return
        gathered = await self._wait_until(min(self.max_batch, self._last_size), self.linger)
        self.stats.regroups += 1
        self._regroup_worth.gathered(gathered)

    async def _wait_until(self, enough: int, longest: float) -> int:
        """Wait until `enough` units are queued, `longest` at most; how many came meanwhile."""
        first = len(self._queue)
        self._enough_at = enough
        self._enough.clear()
        self._lingering = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._enough.wait(), longest)
        finally:
            self._lingering = False
            self._enough_at = self.max_batch
        return len(self._queue) - first

    async def _run_batch(self, batch: list[_Pending[Any]]) -> None:
        self.stats.record(len(batch))
        self._last_size = len(batch)
        try:
            try:
                results = await self._fast(batch)
            except _UnitFailed:
                self.stats.isolated += 1
                results = await self._isolated(batch)
        except asyncio.CancelledError:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(RuntimeError("group commit closed"))
            raise
        except Exception as exc:  # COMMIT or the database failed: the whole batch did
            # The error's class only: a statement's values are citizens' personal data.
            log.warning("group_commit_failed", size=len(batch), error_class=type(exc).__name__)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        for p, (ok, value) in zip(batch, results, strict=True):
            if p.future.done():
                continue
            if ok:
                p.future.set_result(value)
            else:
                p.future.set_exception(value)
        if any(ok for ok, _ in results):
            self.on_commit()

    async def _fast(self, batch: list[_Pending[Any]]) -> list[tuple[bool, Any]]:
        """Every unit in one transaction, no savepoints: the usual case."""
        deferred = Batch()
        results: list[tuple[bool, Any]] = []
        async with self.engine.begin() as conn:
            if self.counters is not None:
                amounts = Counter(p.order for p in batch if p.order)
                await deferred.claim(conn, self.counters, dict(sorted(amounts.items())))
            for p in batch:
                try:
                    results.append((True, await p.unit(conn, deferred)))
                except Exception as exc:
                    if is_transient_database_error(exc):
                        raise
                    raise _UnitFailed from exc  # rolls the transaction back
            try:
                await deferred.flush(conn)
            except Exception as exc:
                if is_transient_database_error(exc):
                    raise
                raise _UnitFailed from exc  # one unit's rows were bad: find out whose
        return results

    async def _isolated(self, batch: list[_Pending[Any]]) -> list[tuple[bool, Any]]:
        """Every unit in its own SAVEPOINT within the batch's transaction: a unit that
        raises is rolled back alone and gets its error."""
        results: list[tuple[bool, Any]] = []
        async with self.engine.begin() as conn:
            for p in batch:
                deferred = Batch()
                savepoint = await conn.begin_nested()
                try:
                    value = await p.unit(conn, deferred)
                    await deferred.flush(conn)
                except Exception as exc:
                    if is_transient_database_error(exc):
                        raise
                    await savepoint.rollback()
                    results.append((False, exc))
                    continue
                await savepoint.commit()
                results.append((True, value))
        return results
