"""POST /dossiers through the group commit (core.runtime.group_commit), on SQLite and
PostgreSQL: one transaction per batch, each request answered with its own result or error.

A batch is made deterministic by holding the batcher (`GroupCommit.held`) until the
requests are queued: no timing decides who shares a transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.core.domain.calendar import VN_TZ
from services.core.runtime.database import create_engine
from services.core.runtime.group_commit import Batch, GroupCommit
from services.intake.adapters import repository as repo
from services.intake.adapters import tables as t
from tests.fixtures.intake import IntakeHarness, dossier_body


def writes(intake: IntakeHarness) -> GroupCommit:
    return intake.service.context.dossier_writes


async def queued(group: GroupCommit, n: int) -> None:
    """Until n units wait in the held batcher (each request gets to it in a few loop turns)."""
    for _ in range(10_000):
        if group.queued >= n:
            return
        await asyncio.sleep(0)  # a turn of the loop, not a wait for time
    raise AssertionError(f"only {group.queued} of {n} requests reached the batcher")


async def in_one_batch(
    intake: IntakeHarness, posts: list[Callable[[], Awaitable[httpx.Response]]], batched: int
) -> list[httpx.Response]:
    """Send the posts together while the batcher is held; `batched` of them reach it."""
    group = writes(intake)
    before = group.stats.batches
    async with group.held():
        tasks = [asyncio.create_task(post()) for post in posts]
        await queued(group, batched)
    responses = await asyncio.gather(*tasks)
    assert group.stats.batches == before + 1
    assert group.stats.sizes[-1] == batched
    return list(responses)


def post(
    intake: IntakeHarness, key: str | None = None, **body: Any
) -> Callable[[], Awaitable[httpx.Response]]:
    headers = {**intake.clerk, **({"Idempotency-Key": key} if key else {})}
    return lambda: intake.client.post("/dossiers", json=dossier_body(**body), headers=headers)


async def count(intake: IntakeHarness, table: sa.Table) -> int:
    async with intake.service.engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


def phone(n: int) -> dict[str, Any]:
    return {
        "applicant": {
            "full_name": "Nguyễn Văn An",
            "phone": f"09123456{n:02d}",
            "id_number": "001203004567",
        }
    }


async def test_a_bad_request_in_a_batch_fails_alone(intake: IntakeHarness) -> None:
    await intake.procedure()
    first = await intake.client.post(
        "/dossiers", json=dossier_body(), headers={**intake.clerk, "Idempotency-Key": "k-used"}
    )
    assert first.status_code == 201
    responses = await in_one_batch(
        intake,
        [
            post(intake, **phone(1)),
            post(intake, key="k-used", **phone(2)),  # the key's body was another: 422
            post(intake, **phone(3)),
            post(intake, procedure_code="NO-SUCH"),  # refused before the batch: 422
            post(intake, **phone(4)),
        ],
        batched=4,
    )
    assert [r.status_code for r in responses] == [201, 422, 201, 422, 201]
    assert responses[1].json()["error"]["field"] == "Idempotency-Key"
    assert responses[3].json()["error"]["field"] == "procedure_code"
    assert writes(intake).stats.isolated == 1  # run again with a savepoint per request
    codes = [first.json()["code"]] + [responses[i].json()["code"] for i in (0, 2, 4)]
    assert [c[-4:] for c in codes] == ["0001", "0002", "0003", "0004"]  # no gap for the 422
    assert await count(intake, t.dossiers) == 4
    assert await count(intake, t.outbox) == 4  # one dossier.received each, none for the 422


async def test_the_same_key_twice_in_one_batch_is_one_dossier(intake: IntakeHarness) -> None:
    await intake.procedure()
    responses = await in_one_batch(
        intake,
        [post(intake, key="quay-1-7"), post(intake, **phone(5)), post(intake, key="quay-1-7")],
        batched=3,
    )
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert responses[0].json() == responses[2].json()
    assert responses[0].json()["id"] != responses[1].json()["id"]
    assert writes(intake).stats.isolated == 0
    assert await count(intake, t.dossiers) == 2
    assert await count(intake, t.outbox) == 2
    # The batch took three codes up front and used two: the third is given back.
    assert sorted(r.json()["code"][-4:] for r in responses[:2]) == ["0001", "0002"]
    assert (await intake.dossier(**phone(6)))["code"][-4:] == "0003"


async def test_codes_stay_gapless_under_concurrency(intake: IntakeHarness) -> None:
    await intake.procedure()
    await intake.procedure(code="P2", agency="UBND-Q1")
    used = await intake.client.post(
        "/dossiers", json=dossier_body(), headers={**intake.clerk, "Idempotency-Key": "taken"}
    )
    assert used.status_code == 201
    posts = []
    for n in range(60):
        if n % 10 == 3:  # a key reused with another body, here and there: 422
            posts.append(post(intake, key="taken", **phone(n)))
        else:
            posts.append(post(intake, procedure_code="P1" if n % 2 else "P2", **phone(n)))
    responses = await asyncio.gather(*(p() for p in posts))
    statuses = [r.status_code for r in responses]
    assert statuses.count(422) == 6 and statuses.count(201) == 54
    codes = sorted([used.json()["code"]] + [r.json()["code"] for r in responses if r.is_success])
    assert codes == [f"UBND-Q1-20261116-{n:04d}" for n in range(1, 56)]
    assert await count(intake, t.dossiers) == 55
    assert await count(intake, t.outbox) == 55
    assert max(writes(intake).stats.sizes) > 1  # they did share transactions


@contextmanager
def commit_fails_once(intake: IntakeHarness) -> Iterator[None]:
    """The next COMMIT fails as a database in trouble fails it (a transient error)."""
    failed = []

    def fail(_conn: Any) -> None:
        if not failed:
            failed.append(True)
            raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    engine = intake.service.engine.sync_engine
    event.listen(engine, "commit", fail)
    try:
        yield
    finally:
        event.remove(engine, "commit", fail)
    assert failed


async def test_a_failed_commit_fails_every_request_and_writes_nothing(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    with commit_fails_once(intake):
        responses = await in_one_batch(
            intake, [post(intake, **phone(1)), post(intake, key="k-9"), post(intake)], batched=3
        )
    assert [r.status_code for r in responses] == [503, 503, 503]
    assert await count(intake, t.dossiers) == 0
    assert await count(intake, t.outbox) == 0
    assert await count(intake, t.idempotency_keys) == 0
    again = await intake.client.post(
        "/dossiers", json=dossier_body(), headers={**intake.clerk, "Idempotency-Key": "k-9"}
    )
    assert again.status_code == 201
    assert again.json()["code"].endswith("-0001")  # the failed batch took no number


async def test_a_unit_whose_rows_fail_is_rolled_back_alone(intake: IntakeHarness) -> None:
    """Driven directly: the deferred rows of one unit break a constraint when the batch
    inserts them; that unit gets the IntegrityError, its neighbours are committed."""
    await intake.procedure(agency="UBND-Q1")  # the agency UBND-Q1 exists
    group = GroupCommit(intake.service.engine)
    woken = []
    group.on_commit = lambda: woken.append(True)
    now = intake.clock()

    def agency(code: str) -> Callable[[AsyncConnection, Batch], Awaitable[str]]:
        async def unit(_conn: AsyncConnection, batch: Batch) -> str:
            row = {"code": code, "name": code, "office_schedule": {}, "created_at": now}
            batch.insert(t.agencies, row)
            return code

        return unit

    async with group.held():
        tasks = [
            asyncio.create_task(group.run(agency(c))) for c in ("UBND-Q2", "UBND-Q1", "UBND-Q3")
        ]
        await queued(group, 3)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await group.close()
    assert results[0] == "UBND-Q2" and results[2] == "UBND-Q3"
    assert isinstance(results[1], IntegrityError)
    assert group.stats.sizes == [3] and group.stats.isolated == 1
    assert woken == [True]  # the relay is woken once for the batch
    async with intake.service.engine.connect() as conn:
        codes = (await conn.execute(sa.select(t.agencies.c.code))).scalars().all()
    assert sorted(codes) == ["UBND-Q1", "UBND-Q2", "UBND-Q3"]


async def test_new_office_hours_apply_to_the_next_receipt(intake: IntakeHarness) -> None:
    """The catalogue is cached in the process; this intake's own change is seen at once."""
    await intake.procedure(time_limit={"value": 8, "unit": "working_hours"})
    intake.clock.now = datetime(2026, 11, 20, 15, 0, tzinfo=VN_TZ)  # Friday 15:00
    before = await intake.dossier()  # the procedure and its agency are cached now
    assert before["due_at"] == "2026-11-23T15:00:00+07:00"  # Fri 15–17, Mon 08–15
    weekday = [["08:00", "12:00"], ["13:00", "17:00"]]
    schedule = {"week": {**{str(d): weekday for d in range(5)}, "5": [["08:00", "12:00"]]}}
    r = await intake.client.put(
        "/agencies/UBND-Q1",
        json={"name": "UBND Quận 1", "office_schedule": schedule},
        headers=intake.admin,
    )
    assert r.status_code == 200, r.text
    after = await intake.dossier()
    # Fri 15–17 (2h), Sat 08–12 (4h), Mon 08–10 (2h).
    assert after["due_at"] == "2026-11-23T10:00:00+07:00"


async def test_units_run_in_the_order_of_the_rows_they_lock(intake: IntakeHarness) -> None:
    """Every batch takes its counter locks in one order, so two batches (of two replicas on
    PostgreSQL) cannot deadlock on them; within one counter, arrival order is kept."""
    group = GroupCommit(intake.service.engine)
    ran: list[str] = []

    def unit(name: str) -> Callable[[AsyncConnection, Batch], Awaitable[str]]:
        async def record(_conn: AsyncConnection, _batch: Batch) -> str:
            ran.append(name)
            return name

        return record

    work = [("q3-a", "UBND-Q3"), ("q1-a", "UBND-Q1"), ("q3-b", "UBND-Q3"), ("q1-b", "UBND-Q1")]
    async with group.held():
        tasks = [asyncio.create_task(group.run(unit(n), order=o)) for n, o in work]
        await queued(group, 4)
    assert await asyncio.gather(*tasks) == ["q3-a", "q1-a", "q3-b", "q1-b"]
    await group.close()
    assert ran == ["q1-a", "q1-b", "q3-a", "q3-b"]


async def test_two_replicas_never_hand_out_the_same_code(intake: IntakeHarness) -> None:
    """Two processes' batchers on one database (two engines): the counter row read by a
    batch stays locked until it commits, so the codes of both are distinct and gapless."""
    url = intake.service.engine.url.render_as_string(hide_password=False)
    other = create_engine(url)
    groups = [intake.service.context.dossier_writes, GroupCommit(other)]
    day = intake.clock().date()

    async def take(conn: AsyncConnection, batch: Batch) -> str:
        return await repo.next_code(batch, conn, "UBND-Q1", day)

    try:
        codes = await asyncio.gather(*(groups[n % 2].run(take) for n in range(40)))
    finally:
        await groups[1].close()
        await other.dispose()
    assert sorted(codes) == [f"UBND-Q1-20261116-{n:04d}" for n in range(1, 41)]
    assert [g.stats.sizes[-1] for g in groups] == [20, 20]  # one batch each, side by side


async def test_an_expired_catalogue_entry_is_read_once_by_concurrent_requests(
    intake: IntakeHarness,
) -> None:
    await intake.procedure()
    context = intake.service.context
    context.catalogue.invalidate()
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM intake_procedures" in statement:
            reads.append(statement)

    engine = context.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = await asyncio.gather(
            *(context.catalogue.get(context.engine, "P1") for _ in range(20))
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert {entry.procedure.code for entry in found if entry} == {"P1"}
    assert len(reads) == 1  # one read for the twenty, not one each


# -- linger: an idle batcher waits a moment for company ------------------------------------


async def nothing(_conn: AsyncConnection, _batch: Batch) -> str:
    return "done"


async def until_lingering(group: GroupCommit) -> None:
    for _ in range(10_000):
        if group.lingering:
            return
        await asyncio.sleep(0)  # a turn of the loop, not a wait for time
    raise AssertionError("the batcher never waited for more units")


@asynccontextmanager
async def batcher(tmp_path: Any, linger: float, **waits: Any) -> AsyncIterator[GroupCommit]:
    """A group commit on a SQLite file of its own, lingering `linger` seconds."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'linger.db'}")
    group = GroupCommit(engine, linger=linger, **waits)
    try:
        yield group
    finally:
        await group.close()
        await engine.dispose()


async def test_an_idle_batcher_waits_for_as_many_units_as_its_last_batch(
    tmp_path: Any,
) -> None:
    # A wait far longer than the test: it ends on the number of units, not on time.
    async with batcher(tmp_path, 600.0) as group:
        async with group.held():
            three = [asyncio.create_task(group.run(nothing)) for _ in range(3)]
            await queued(group, 3)
        assert await asyncio.gather(*three) == ["done"] * 3  # one batch of three
        first = asyncio.create_task(group.run(nothing))
        await until_lingering(group)
        second = asyncio.create_task(group.run(nothing))
        await queued(group, 2)
        assert group.lingering  # two of the three the last batch held
        third = asyncio.create_task(group.run(nothing))
        assert await asyncio.wait_for(asyncio.gather(first, second, third), 30) == ["done"] * 3
        assert group.stats.sizes == [3, 3]
        assert group.stats.lingers == 1


async def test_callers_waiting_for_their_answers_are_waited_for_until_all_are_back(
    tmp_path: Any,
) -> None:
    async with batcher(tmp_path, 600.0) as group:  # were a wait to run out, the test would too

        async def clerk(number: int) -> None:
            assert await group.run(nothing) == "done"
            for _ in range(4):
                # Each comes back a few turns of the loop after the other, as over a network.
                for _ in range(3 * number):
                    await asyncio.sleep(0)
                assert await group.run(nothing) == "done"

        async with group.held():  # the four begin together
            clerks = asyncio.gather(*(clerk(n) for n in range(4)))
            await queued(group, 4)
        await asyncio.wait_for(clerks, 30)
        # Every batch is the four clerks: each wait ended when the last of them was back.
        assert group.stats.sizes == [4] * 5
        assert group.stats.lingers == 4


async def test_units_coming_one_by_one_are_gathered_until_the_trickle_batch(
    tmp_path: Any,
) -> None:
    async with batcher(tmp_path, 600.0, trickle_batch=5) as group:  # no trickle for now
        async with group.held():
            two = [asyncio.create_task(group.run(nothing)) for _ in range(2)]
            await queued(group, 2)
        assert await asyncio.gather(*two) == ["done"] * 2  # a batch of two; then idle
        group.trickle = 600.0  # far longer than the test: it must end on the fifth unit
        units = []
        for n in range(1, 5):
            units.append(asyncio.create_task(group.run(nothing)))
            await queued(group, n)
            await until_lingering(group)
        # The first wait ended on the second unit (as many as the last batch held); the
        # trickle went on to the fifth, as clerks at five counters send them.
        units.append(asyncio.create_task(group.run(nothing)))
        assert await asyncio.wait_for(asyncio.gather(*units), 30) == ["done"] * 5
        assert group.stats.sizes == [2, 5]
        assert (group.stats.lingers, group.stats.trickles) == (1, 1)


async def test_the_trickle_waits_without_a_first_wait_before_it(tmp_path: Any) -> None:
    # No first wait: the trickle alone, before the batch the first unit starts.
    async with batcher(tmp_path, 0.0, trickle=600.0, trickle_batch=3) as group:
        units = [asyncio.create_task(group.run(nothing))]
        await until_lingering(group)
        units += [asyncio.create_task(group.run(nothing)) for _ in range(2)]
        assert await asyncio.wait_for(asyncio.gather(*units), 30) == ["done"] * 3
        assert group.stats.sizes == [3]
        assert (group.stats.lingers, group.stats.trickles) == (0, 1)


async def test_after_a_full_batch_the_next_one_does_not_trickle(tmp_path: Any) -> None:
    async with batcher(tmp_path, 0.0, trickle=600.0, trickle_batch=3) as group:
        async with group.held():
            three = [asyncio.create_task(group.run(nothing)) for _ in range(3)]
            await queued(group, 3)
        assert await asyncio.gather(*three) == ["done"] * 3
        # A trickle would wait for two more units, far longer than the test.
        assert await asyncio.wait_for(group.run(nothing), 30) == "done"
        assert group.stats.sizes == [3, 1]
        assert group.stats.trickles == 0


async def test_callers_coming_back_together_stop_paying_the_trickle(tmp_path: Any) -> None:
    # The first wait ends on the number of units; the trickle runs out in 0.2 s each time.
    async with batcher(tmp_path, 600.0, trickle=0.2, trickle_batch=8) as group:

        async def clerk() -> None:
            for _ in range(12):
                assert await group.run(nothing) == "done"

        async with group.held():  # the four begin together
            clerks = asyncio.gather(*(clerk() for _ in range(4)))
            await queued(group, 4)
        await asyncio.wait_for(clerks, 30)
        assert group.stats.sizes == [4] * 12
        # Back together, the four were all in when the batcher woke: no first wait; the
        # trickle gathered nobody, twice, and stopped (its next try: at its sixteenth chance).
        assert group.stats.lingers == 0
        assert group.stats.trickles == 2


async def with_loop_turns(_conn: AsyncConnection, _batch: Batch) -> str:
    """A unit whose batch gives the loop a few turns while written, as a database would:
    callers answered by the batch before can come back meanwhile."""
    for _ in range(5):
        await asyncio.sleep(0)  # a turn of the loop, not a wait for time
    return "done"


async def test_callers_split_in_two_groups_are_regrouped(tmp_path: Any) -> None:
    # 32 callers who wait for their answers: 8 of them in a batch being written when the
    # other 24 come. Run at once after it, the 24 would be written while the 8 come back,
    # and so on for good (8, 24, 8, 24, ...). The regroup waits for the 24 after the 8's
    # next batch. A wait far longer than the test: it ends on the number of units.
    async with batcher(tmp_path, 600.0, trickle_batch=8) as group:
        running, gate = asyncio.Event(), asyncio.Event()

        async def clerk(first: Callable[[AsyncConnection, Batch], Awaitable[str]]) -> None:
            assert await group.run(first) == "done"
            for _ in range(5):
                assert await group.run(with_loop_turns) == "done"

        async with group.held():
            eight = [asyncio.create_task(clerk(written_slowly(running, gate))) for _ in range(8)]
            await queued(group, 8)
        await asyncio.wait_for(running.wait(), 30)
        others = [asyncio.create_task(clerk(with_loop_turns)) for _ in range(24)]
        await queued(group, 24)
        gate.set()
        await asyncio.wait_for(asyncio.gather(*eight, *others), 30)
        assert group.stats.sizes == [8, 24] + [32] * 5
        assert group.stats.regroups == 1


def written_slowly(
    running: asyncio.Event, gate: asyncio.Event
) -> Callable[[AsyncConnection, Batch], Awaitable[str]]:
    """A unit that says when its batch is being written, and ends when the gate opens."""

    async def unit(_conn: AsyncConnection, _batch: Batch) -> str:
        running.set()
        await gate.wait()
        return "done"

    return unit


@pytest.mark.parametrize(("turnaround", "trickles"), [(600.0, 2), (0.0, 4)])
async def test_a_caller_back_from_the_last_batch_is_no_gain_of_the_trickle(
    tmp_path: Any, turnaround: float, trickles: int
) -> None:
    # Callers that wait for their answers, split over two batches: one unit comes while
    # the batch before it is written, and its trickle gathers the caller of that batch,
    # back as soon as answered. Within `turnaround` of the answer, that is no unit coming
    # on its own time: twice fruitless, the trickle stops. Counted, it would go on.
    async with batcher(tmp_path, 0.0, trickle_batch=2, turnaround=turnaround) as group:
        for _ in range(4):
            running, gate = asyncio.Event(), asyncio.Event()
            group.trickle = 0.0  # the first unit of the round goes at once
            first = asyncio.create_task(group.run(written_slowly(running, gate)))
            await asyncio.wait_for(running.wait(), 30)
            group.trickle = 600.0  # far longer than the test: a trickle ends on two units
            second = asyncio.create_task(group.run(nothing))
            await queued(group, 1)
            gate.set()
            assert await first == "done"
            back = asyncio.create_task(group.run(nothing))  # the first's caller, at once
            assert await asyncio.wait_for(asyncio.gather(second, back), 30) == ["done"] * 2
        assert group.stats.trickles == trickles


async def test_a_caller_waiting_for_each_answer_stops_paying_the_wait(tmp_path: Any) -> None:
    async with batcher(tmp_path, 0.01) as group:
        for _ in range(12):  # one after the other, as a script importing dossiers sends them
            assert await group.run(nothing) == "done"
        assert group.stats.sizes == [1] * 12
        # The first unit starts the batcher; the next two find it idle and wait, gather
        # nothing, and the average of what waiting gathers falls below half a unit: the nine
        # after them are run at once (the next try is at the sixteenth idle wake-up).
        assert group.stats.lingers == 2
        assert not group.lingering


async def test_a_lone_caller_is_waited_for_ever_more_rarely(tmp_path: Any) -> None:
    async with batcher(tmp_path, 0.001) as group:
        for _ in range(250):  # one after the other, as a script importing dossiers sends them
            assert await group.run(nothing) == "done"
        # Two waits until the batcher learns that waiting gathers nobody, then one after 16
        # idle wake-ups, 32, 64 and 128: each fruitless try puts the next one twice as far.
        assert group.stats.lingers == 2 + 4
        assert group.stats.sizes == [1] * 250


async def test_a_wait_that_gathers_callers_again_makes_the_batcher_wait_again(
    tmp_path: Any,
) -> None:
    async with batcher(tmp_path, 0.001) as group:
        for _ in range(3 + 16 + 32):  # alone: the waits stop, the next try is 64 wake-ups away
            assert await group.run(nothing) == "done"
        assert group.stats.lingers == 4
        group.linger = 600.0  # from now on each wait must end on the second unit
        for _ in range(63):
            assert await group.run(nothing) == "done"
        pair = [asyncio.create_task(group.run(nothing))]
        await until_lingering(group)  # the try, at the 64th wake-up
        pair.append(asyncio.create_task(group.run(nothing)))
        assert await asyncio.wait_for(asyncio.gather(*pair), 30) == ["done"] * 2
        # It gathered one: the next try comes after 16 wake-ups again, not 128.
        for _ in range(15):
            assert await group.run(nothing) == "done"
        lone = asyncio.create_task(group.run(nothing))
        await until_lingering(group)
        assert await asyncio.wait_for(asyncio.gather(lone, group.run(nothing)), 30) == ["done"] * 2
