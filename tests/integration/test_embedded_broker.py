"""The embedded Tansu broker: a real child process spoken to over TCP."""

from __future__ import annotations

import asyncio
import socket
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from services.core.runtime.embedded_broker import BrokerStartError, EmbeddedBroker, port_is_free
from services.core.runtime.kafka import ALL_TOPICS, ensure_topics
from tests.fixtures.broker import (
    KafkaEndpoint,
    consume,
    event_ids,
    start_embedded_broker,
    wait_for,
)

pytestmark = pytest.mark.broker

REPO_ROOT = Path(__file__).resolve().parents[2]


async def _produce(bootstrap: str, topic: str, count: int) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
    await producer.start()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    try:
        for i, event_id in enumerate(ids):
            await producer.send_and_wait(
                topic,
                value=f'{{"n": {i}}}'.encode(),
                key=b"dossier-1",
                headers=[("event_id", event_id.encode())],
            )
    finally:
        await producer.stop()
    return ids


async def test_start_produce_consume_stop_frees_port(tmp_path: Path) -> None:
    broker = await start_embedded_broker(tmp_path)
    port = broker.port
    try:
        assert broker.is_running
        assert broker.bootstrap == f"127.0.0.1:{port}"
        sent = await _produce(broker.bootstrap, ALL_TOPICS[0], 3)
        records = await consume(
            broker.bootstrap, ALL_TOPICS[0], until=lambda rs: len(rs) >= 3, timeout=20
        )
        assert event_ids(records) == sent
        assert {r.key for r in records} == {b"dossier-1"}
    finally:
        await broker.stop()
    assert not broker.is_running
    assert port_is_free(port)
    assert "listening on" in broker.log_path.read_text()
    await broker.stop()  # stopping twice is harmless


async def test_restart_keeps_the_port_and_loses_the_data(tmp_path: Path) -> None:
    broker = await start_embedded_broker(tmp_path)
    try:
        port = broker.port
        await _produce(broker.bootstrap, ALL_TOPICS[1], 1)
        await broker.restart()
        assert broker.is_running
        assert broker.port == port
        await ensure_topics(broker.bootstrap, ALL_TOPICS)
        sent = await _produce(broker.bootstrap, ALL_TOPICS[1], 2)
        records = await consume(
            broker.bootstrap, ALL_TOPICS[1], until=lambda rs: len(rs) >= 2, timeout=20
        )
        assert event_ids(records) == sent  # memory-only: the record before the restart is gone
    finally:
        await broker.stop()


async def test_a_broker_that_exits_reports_its_log(tmp_path: Path) -> None:
    broker = EmbeddedBroker(log_dir=tmp_path, binary="/bin/false", startup_timeout=5)
    with pytest.raises(BrokerStartError, match="exited with code 1"):
        await broker.start()
    assert not broker.is_running


async def test_a_taken_port_is_reported_after_the_deadline(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        broker = EmbeddedBroker(port=port, log_dir=tmp_path, startup_timeout=2)
        with pytest.raises(BrokerStartError, match="port is already in use") as info:
            await broker.start()
    assert "AddrInUse" in str(info.value)
    assert not broker.is_running


_PARENT_SCRIPT = """
import asyncio, sys
from services.core.runtime.embedded_broker import EmbeddedBroker

async def main() -> None:
    broker = EmbeddedBroker(log_dir=sys.argv[1])
    await broker.start()
    print(f"PID={broker.pid}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


async def _read_pid(process: asyncio.subprocess.Process) -> int:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        if line.startswith(b"PID="):
            return int(line[4:])
    raise AssertionError("the parent exited before starting the broker")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux")
async def test_the_broker_dies_with_a_killed_parent(tmp_path: Path) -> None:
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _PARENT_SCRIPT,
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=REPO_ROOT,
    )
    try:
        pid = await asyncio.wait_for(_read_pid(parent), 30)
        assert _alive(pid)
    finally:
        parent.kill()
        await parent.wait()

    async def gone() -> bool:
        return not _alive(pid)

    await wait_for(gone, timeout=10, message="broker gone after its parent was killed")


async def test_session_broker_has_all_topics(kafka_broker: KafkaEndpoint) -> None:
    await ensure_topics(kafka_broker.bootstrap, ALL_TOPICS)  # idempotent
    topic = ALL_TOPICS[-1]
    sent = await _produce(kafka_broker.bootstrap, topic, 1)
    records = await consume(
        kafka_broker.bootstrap, topic, until=lambda rs: sent[0] in event_ids(rs), timeout=20
    )
    assert sent[0] in event_ids(records)
