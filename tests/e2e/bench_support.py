"""What the small runs of the service benchmarks share: a database of their own, and the
checks that their README section renders and replaces only itself."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from bench import common
from services.core.runtime.embedded_broker import BrokerStartError
from tests.fixtures.broker import broker_unavailable
from tests.fixtures.db import BASE_PG_URL, PG_URL, unavailable, worker_database


def bench_url(name: str) -> str:
    """A database of this test's own on the tests' PostgreSQL server: the suite truncates
    the `test` database under other tests (one per pytest-xdist worker, as `test` is)."""
    return worker_database(BASE_PG_URL, f"motcua_bench_test_{name}")


@asynccontextmanager
async def bench_database(name: str) -> AsyncIterator[str]:
    url = bench_url(name)
    try:
        await common.ensure_database(url)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    try:
        yield url
    except BrokerStartError as exc:
        broker_unavailable(f"the embedded Kafka-protocol broker did not start: {exc}")
    finally:
        await common.drop_database(url)


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def check_section_writes(tmp_path: Path, name: str, title: str, text: str, row: str) -> str:
    """Writing the section twice into a README with another section and a table: one copy,
    the other section intact, the table gains the row once. Returns what was written."""
    target = tmp_path / "README.md"
    target.write_text(
        "# Benchmarks\n\nIntro.\n\n| Benchmark | Script | What it shows |\n| --- | --- | --- |\n"
        "| [Other](#other) | `bench/other.py` | something |\n\nAfter the table.\n\n"
        "<!-- BEGIN other -->\n## Other\n<!-- END other -->\n",
        encoding="utf-8",
    )
    common.write_section(target, name, text, row)
    common.write_section(target, name, text, row)
    written = target.read_text(encoding="utf-8")
    assert written.count(f"## {title}") == 1
    assert written.count(f"`bench/{name}.py`") == 1 + text.count(f"`bench/{name}.py`")
    assert "## Other" in written and "| [Other](#other) | `bench/other.py` |" in written
    table = written.split("\n\n")[2]
    assert table.splitlines()[-1] == row, table
    return written
