"""SQLite's write-ahead log copied back to the database file on a thread of its own.

Why. In WAL mode a commit appends the pages it changed to the WAL; a checkpoint copies them
back into the database file and waits for the disk. By default the commit that takes the WAL
past 1,000 pages runs that checkpoint itself, and the services' statements run on the event
loop's thread (core.runtime.sqlite_inline): the loop stopped while the pages were copied and
synced, and every request of that commit's batch waited. Measured in `motcua up` at 32 clerks
on 2026-12-03: 86 of the intake's 1,088 commits took over 5 ms (up to 17 ms), 0.9 s in all.
Here a thread of the process checkpoints, on a connection of its own; Python's sqlite3 lets
go of the GIL while SQLite copies and syncs, so the event loop goes on meanwhile. Measured
the same way, alternate runs: no commit of the intake's over 7 ms, and 1,037-1,202 dossiers
a second at p99 64-72 ms against 943-952 at p99 84-105 (bench/README.md, "Intake
throughput").

How. Each commit tells the checkpointer (`committed`: an event set, nothing more). The thread
then waits `every` seconds, so that the commits of that moment share one checkpoint (a page
that many of them wrote is copied once), and runs a PASSIVE checkpoint: it copies what it
can without waiting for the writer or any reader, who are never blocked by it. While nothing
is written the thread sleeps.

Backstop. The writing connection keeps SQLite's automatic checkpoint, at `BACKSTOP_PAGES`
instead of 1,000: should the thread fall behind or fail, the WAL still cannot grow without
bound; the commit that crosses it checkpoints in place, as before.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

EVERY_SECONDS = 0.2  # after a commit, how long the checkpointer lets further commits gather
# About 40 MiB of WAL: at 1,000 dossiers a second the intake's WAL grows by about 10 MiB
# between two checkpoints of the thread, so the backstop is reached only when it stalls.
BACKSTOP_PAGES = 10_000


class WalCheckpointer:
    """A thread that checkpoints one SQLite file's WAL after commits (see the module)."""

    def __init__(self, path: Path, every: float = EVERY_SECONDS) -> None:
        self.path = path
        self.every = every
        self.passes = 0  # checkpoints run, for tests and the curious
        self.last: tuple[int, int, int] | None = None  # (busy, WAL frames, frames copied)
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._failing = False
        self._thread = threading.Thread(
            target=self._run, name=f"wal-checkpoint {path.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def committed(self) -> None:
        """A commit was made on the file (cheap: called at every commit)."""
        self._dirty.set()

    def stop(self) -> None:
        """Stop after the checkpoint in progress, if any; does not wait for it."""
        self._stopping.set()
        self._dirty.set()

    @property
    def pending(self) -> bool:
        """A commit was made that no checkpoint has started on yet."""
        return self._dirty.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._dirty.wait()
                if self._stopping.wait(self.every):
                    return
                self._dirty.clear()
                conn = self._checkpoint(conn)
        finally:
            if conn is not None:
                conn.close()

    def _checkpoint(self, conn: sqlite3.Connection | None) -> sqlite3.Connection | None:
        """One PASSIVE checkpoint; the connection to use for the next."""
        try:
            if conn is None:
                # mode=rw: a file removed meanwhile is not created again, empty.
                uri = f"{self.path.resolve().as_uri()}?mode=rw"
                conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            # The writer's automatic checkpoint (BACKSTOP_PAGES) still bounds the WAL. One
            # line per run of failures: the thread tries again after the next commit.
            if not self._failing:
                log.warning("wal_checkpoint_failed", file=self.path.name, error=type(exc).__name__)
            self._failing = True
            return conn
        if self._failing:
            log.info("wal_checkpoint_recovered", file=self.path.name)
        self._failing = False
        self.passes += 1
        self.last = (int(row[0]), int(row[1]), int(row[2]))
        return conn


__all__ = ["BACKSTOP_PAGES", "EVERY_SECONDS", "WalCheckpointer"]
