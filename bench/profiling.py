"""Where a service process spends its CPU: py-spy samples, sorted into what they were doing.

py-spy (``pip install py-spy``, or the ``bench`` extra) samples the Python stacks of a running
process from outside, without changing it. Each sample is put in the category of the deepest
frame that belongs to a known package (so JSON encoding called by SQLAlchemy counts as JSON),
and the shares of a few functions are counted inclusively (everything they called).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

RATE = 200  # samples per second

# (category, file prefixes); the deepest frame that matches one names the sample.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("pydantic: validation and serialisation", ("pydantic/", "pydantic_core/")),
    ("JSON encoding and decoding", ("json/", "fastapi/encoders.py")),
    ("asyncpg (PostgreSQL driver)", ("asyncpg/",)),
    # the services' SQLite statements run in place (core.runtime.sqlite_inline): sqlite3's C
    # code shows as that module's frame
    ("aiosqlite + sqlite3 (SQLite driver)", (
        "aiosqlite/", "sqlite3/", "services/core/runtime/sqlite_inline.py",
    )),
    ("SQLAlchemy (Core, pool, dialects)", ("sqlalchemy/",)),
    ("logging: structlog, one line per request", ("structlog/", "logging/")),
    ("Kafka: aiokafka, faststream", ("aiokafka/", "faststream/", "kafka/")),
    ("uvicorn + httptools (HTTP server)", ("uvicorn/", "httptools/")),
    ("Starlette BaseHTTPMiddleware (the request-log middleware)", (
        "starlette/middleware/base.py",
    )),
    ("aiohttp (the notifier's client of the SMS gateway and the postal operator)", (
        "aiohttp/", "yarl/", "multidict/", "aiohappyeyeballs/", "propcache/",
    )),
    ("httpx + httpcore (HTTP client of the intake and of `motcua up`'s workers)", (
        "httpx/", "httpcore/", "h11/",
    )),
    ("FastAPI + Starlette (routing, dependencies)", ("fastapi/", "starlette/")),
    ("motcua domain (calendar, deadline, dossier, notices)", (
        "services/core/domain/", "services/intake/domain/", "services/tracker/domain/",
        "services/notifier/domain/", "holidays/", "schemas/", "phonenumbers/",
    )),
    ("motcua tracker and notifier (same process)", ("services/tracker/", "services/notifier/")),
    ("motcua intake: API, commands, repository, outbox relay", ("services/",)),
    ("asyncio event loop", ("asyncio/", "uvloop/")),
)  # fmt: skip
OTHER = "other (stdlib: uuid, datetime, hashlib, …)"

# The receipt's two handlers, and the group commit whose task runs its transaction: named
# here so that what sums their shares (bench/intake_throughput.py) picks exactly these rows.
RECEIPT_HANDLERS = (
    "POST /dossiers handler (`receive_dossier`; its transaction runs in the group commit)",
    "POST /dossiers, the fast path (`FastReceipt`; its transaction runs in the group commit)",
)
GROUP_COMMIT = "intake group commit (`GroupCommit`: a batch of requests' transaction)"

# Inclusive shares: a sample counts when any frame of its stack matches.
FUNCTIONS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    (RECEIPT_HANDLERS[0],
     lambda f: f.startswith("receive_dossier (services/intake/api/dossiers.py")),
    (RECEIPT_HANDLERS[1],
     lambda f: f.startswith("FastReceipt.") and "fast_receipt.py" in f),
    ("  of which `commit`", lambda f: f.startswith("commit (") and "sqlalchemy/" in f),
    ("FastAPI: body parsing and validation of the request",
     lambda f: f.startswith("request_body_to_args (") or f.startswith("_extract_form_body")),
    ("FastAPI: response model validation and serialisation",
     lambda f: f.startswith("serialize_response (fastapi/")),
    ("bearer token check (`principal`)", lambda f: f.startswith("principal (services/")),
    ("structlog (every log line)", lambda f: "structlog/" in f),
    ("outbox relay (`OutboxRelay.run`)", lambda f: f.startswith("OutboxRelay.run (")),
    (GROUP_COMMIT,
     lambda f: f.startswith("GroupCommit.") and "group_commit.py" in f),
    ("Kafka consumers (tracker, notifier, intake read model)",
     lambda f: "on_batch (services/core/runtime/consumer.py" in f),
    ("  of which the offset commits (one a batch)",
     lambda f: f.startswith("AIOKafkaConsumer.commit (aiokafka/")),
    ("notifier dispatcher (SMS sending)", lambda f: f.startswith("Dispatcher.")),
    ("  of which the HTTP calls (`HttpClient.request`)",
     lambda f: f.startswith("HttpClient.request (services/notifier/")),
    ("imports at run time (httpcore's `import sniffio`, failing)",
     lambda f: f.startswith("_find_and_load (<frozen importlib._bootstrap>")),
)  # fmt: skip


def py_spy() -> str | None:
    """The py-spy command next to our Python, or on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def have_py_spy() -> bool:
    """Whether py-spy is there for `--profile`; says how to install it when not."""
    if py_spy() is None:
        print("py-spy is not installed: .venv/bin/pip install -e '.[bench]'", file=sys.stderr)
        return False
    return True


@dataclass(frozen=True)
class Profile:
    seconds: float
    rate: int
    samples: int
    by_thread: dict[str, int]
    by_category: dict[str, int]
    by_function: dict[str, int]
    top_leaves: list[tuple[str, int]]

    def busy(self) -> float:
        """Samples / (rate × seconds): how much of the time a thread was on a core or
        waiting for one (py-spy counts a runnable thread as active)."""
        return self.samples / (self.rate * self.seconds)


class Recorder:
    """py-spy record of some processes for a while, in the background."""

    def __init__(self, pids: Sequence[int], seconds: float, folder: Path) -> None:
        command = py_spy()
        if command is None:
            raise RuntimeError("py-spy is not installed: pip install py-spy (or '.[bench]')")
        self.seconds = seconds
        folder.mkdir(parents=True, exist_ok=True)
        self.outputs = [folder / f"py-spy-{pid}.txt" for pid in pids]
        self._procs = [
            subprocess.Popen(
                [command, "record", "--pid", str(pid), "--duration", f"{seconds:g}",
                 "--rate", str(RATE), "--format", "raw", "--threads", "--nonblocking",
                 "--output", str(out)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for pid, out in zip(pids, self.outputs, strict=True)
        ]  # fmt: skip

    async def result(self) -> Profile:
        for proc in self._procs:
            _, err = await asyncio.to_thread(proc.communicate)
            if proc.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode(errors='replace')[-500:]}")
        stacks: Counter[str] = Counter()
        for out in self.outputs:
            stacks.update(read_raw(out))
        return summarise(stacks, self.seconds * len(self.outputs))


def read_raw(path: Path) -> Counter[str]:
    stacks: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def _file_of(frame: str) -> str:
    start = frame.rfind("(")
    return frame[start + 1 :] if start >= 0 else ""


# Frames that belong to whoever called them: anyio runs the tasks and sockets of Starlette's
# middleware and of httpcore alike.
TRANSPARENT = ("anyio/",)


def _aiosqlite_wait() -> str:
    """The frame of an aiosqlite worker thread blocked on its queue (`tx.get()`): a thread
    py-spy sees runnable there is waking up for a statement, i.e. waiting for the GIL."""
    try:
        import inspect

        from aiosqlite import core

        lines, first = inspect.getsourcelines(core._connection_worker_thread)
    except (ImportError, AttributeError, OSError):
        return "-"
    offset = next((i for i, line in enumerate(lines) if "tx.get(" in line), None)
    if offset is None:
        return "-"
    return f"_connection_worker_thread (aiosqlite/core.py:{first + offset})"


AIOSQLITE_WAIT = _aiosqlite_wait()
WAITING = "aiosqlite threads taking the GIL back for the next statement"


def category_of(frames: Sequence[str]) -> str:
    if frames and frames[-1] == AIOSQLITE_WAIT:
        return WAITING
    for frame in reversed(frames):
        where = _file_of(frame)
        if where.startswith(TRANSPARENT):
            continue
        for name, prefixes in CATEGORIES:
            if where.startswith(prefixes):
                return name
    return OTHER


def _thread_kind(first: str) -> str:
    name = first.split(": ", 1)[-1]
    if name == "MainThread":
        return "event loop (main thread)"
    if name.startswith("Thread-") or "aiosqlite" in name:
        return "aiosqlite threads"
    return "other threads"


def summarise(stacks: Counter[str], seconds: float) -> Profile:
    by_thread: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for stack, count in stacks.items():
        first, *frames = stack.split(";")
        by_thread[_thread_kind(first)] += count
        by_category[category_of(frames)] += count
        for name, matches in FUNCTIONS:
            if any(matches(frame) for frame in frames):
                by_function[name] += count
        if frames:
            leaves[frames[-1]] += count
    return Profile(
        seconds=seconds,
        rate=RATE,
        samples=sum(stacks.values()),
        by_thread=dict(by_thread.most_common()),
        by_category=dict(by_category.most_common()),
        by_function={name: by_function[name] for name, _ in FUNCTIONS if by_function[name]},
        top_leaves=leaves.most_common(12),
    )


def profile_tables(profile: Profile) -> str:
    total = max(profile.samples, 1)

    def row(name: str, count: int) -> str:
        return f"| {name} | {count:,} | {count / total:.0%} |"

    head = "| {} | Samples | Share |\n| --- | ---: | ---: |"
    parts = [
        head.format("Thread"),
        *(row(n, c) for n, c in profile.by_thread.items()),
        "",
        head.format("Deepest known frame"),
        *(row(n, c) for n, c in profile.by_category.items()),
        "",
        head.format("Inside (inclusive)"),
        *(row(n, c) for n, c in profile.by_function.items()),
        "",
        "Hottest frames (self):",
        "",
        "```",
        *(f"{c:6,}  {frame}" for frame, c in profile.top_leaves),
        "```",
    ]
    return "\n".join(parts)
