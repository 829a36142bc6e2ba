"""The intake's load: clerks posting dossiers back to back on keep-alive connections (closed
loop), and what POST /dossiers answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.common.dossiers import AGENCIES
from bench.common.http import HttpConnection, bearer
from bench.common.machine import CpuShares


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values (any order); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


REQUEST_TIMEOUT = 30.0  # seconds: a request that takes longer counts as an error


TRANSPORT_ERRORS = (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError)


@dataclass
class Clerk:
    """One clerk at one counter: one keep-alive connection, their agency's token and bodies."""

    conn: HttpConnection
    auth: bytes
    bodies: Sequence[bytes]
    _next: int = 0

    def body(self) -> bytes:
        self._next = (self._next + 1) % len(self.bodies)
        return self.bodies[self._next]


@dataclass
class Answers:
    """What POST /dossiers answered over a run: 201s (with their latencies), other statuses,
    transport failures."""

    latencies: list[float]  # of the 201s
    statuses: Counter[int]
    failures: Counter[str]

    @property
    def created(self) -> int:
        return self.statuses[201]

    @property
    def errors(self) -> int:
        return sum(c for s, c in self.statuses.items() if s != 201) + sum(self.failures.values())

    def p(self, fraction: float) -> float:
        return percentile(self.latencies, fraction)

    def error_text(self) -> str:
        parts = [f"{c}× {s}" for s, c in sorted(self.statuses.items()) if s != 201]
        parts += [f"{c}× {name}" for name, c in self.failures.most_common()]
        return ", ".join(parts) or "0"


@dataclass(kw_only=True)
class LevelResult(Answers):
    """One level of clerks posting back to back (closed loop)."""

    concurrency: int
    seconds: float
    per_second: list[int]  # 201s completed in each whole second
    cpu: CpuShares | None = None
    backlog: int = 0  # outbox rows not yet published when the level ended

    @property
    def rate(self) -> float:
        return self.created / self.seconds

    def cpu_ms(self, *groups: str) -> float:
        """Milliseconds of CPU per dossier created, over these groups."""
        if self.cpu is None or not self.created:
            return float("nan")
        return sum(self.cpu.cores(g) for g in groups) * self.seconds / self.created * 1000

    def kb_written(self, *groups: str) -> float:
        """KB written to storage per dossier created, by these groups' processes."""
        if self.cpu is None or not self.created:
            return float("nan")
        return sum(self.cpu.written.get(g, 0) for g in groups) / self.created / 1000


async def drive(clerks: Sequence[Clerk], seconds: float) -> LevelResult:
    """Every clerk posts dossiers back to back until `seconds` are over."""
    latencies: list[float] = []
    finished: list[float] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    clock = time.perf_counter
    start = clock()
    deadline = start + seconds

    async def one_clerk(clerk: Clerk) -> None:
        while clock() < deadline:
            body = clerk.body()
            sent = clock()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    status, _ = await clerk.conn.request("POST", "/dossiers", body, clerk.auth)
            except TRANSPORT_ERRORS as exc:
                failures[type(exc).__name__] += 1
                continue
            done = clock()
            statuses[status] += 1
            if status == 201:
                latencies.append(done - sent)
                finished.append(done - start)

    await asyncio.gather(*(one_clerk(c) for c in clerks))
    wall = clock() - start
    per_second = Counter(int(at) for at in finished if at < int(seconds))
    return LevelResult(
        concurrency=len(clerks),
        seconds=wall,
        latencies=latencies,
        statuses=statuses,
        failures=failures,
        per_second=[per_second[s] for s in range(int(seconds))],
    )


def seat_clerks(
    ports: Sequence[int], count: int, tokens: Mapping[str, str], bodies: Mapping[str, list[bytes]]
) -> list[Clerk]:
    """`count` clerks, clerk *i* working for agency *i* mod the agencies (its token, its
    bodies) on a connection of its own to port *i* mod the ports."""
    found = []
    for i in range(count):
        agency = AGENCIES[i % len(AGENCIES)]
        conn = HttpConnection(ports[i % len(ports)])
        found.append(Clerk(conn, bearer(tokens[agency]), bodies[agency]))
    return found


def close_clerks(clerks: Sequence[Clerk]) -> None:
    for clerk in clerks:
        clerk.conn.close()
