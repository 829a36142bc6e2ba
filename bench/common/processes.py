"""The bundled Kafka-protocol broker and the motcua services as real processes (`python -m
services.cli <command>`), started, waited for until ready, and stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench.common.http import get_once
from services.core.runtime.embedded_broker import EmbeddedBroker, free_port
from services.core.runtime.kafka import ALL_TOPICS, ensure_topics

T = TypeVar("T")
MOTCUA = [sys.executable, "-m", "services.cli"]


READY_TIMEOUT = 90  # seconds for a service process to answer /readyz


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

    def argv(self) -> list[str]:
        return [*MOTCUA, self.command, "--port", str(self.port)]

    def spawn(self) -> None:
        self._terminated = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv(),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def wait_ready(self, within: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + within
        last = "no answer"
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"motcua {self.command} exited:\n{self.log_tail()}")
            try:
                status, body = await get_once(self.port, "/readyz")
            except (OSError, ConnectionError, asyncio.IncompleteReadError) as exc:
                last = type(exc).__name__
            else:
                if status == 200:
                    return
                last = f"{status} {body[:500].decode(errors='replace')}"  # the checks that fail
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"motcua {self.command} not ready within {within:g} s; its last answer to "
                    f"/readyz: {last}\n{self.log_tail()}"
                )
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


async def poll(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float, every: float
) -> T:
    """`read()` again every `every` seconds until `done` with what it read, or `within`
    seconds are over; what it read last."""
    deadline = time.monotonic() + within
    value = await read()
    while not done(value) and time.monotonic() < deadline:
        await asyncio.sleep(every)
        value = await read()
    return value


async def start_services(processes: Sequence[ServiceProcess]) -> None:
    for process in processes:
        process.spawn()
    await asyncio.gather(*(p.wait_ready() for p in processes))


def stop_services(processes: Sequence[ServiceProcess], grace: float = 30) -> list[int | None]:
    """SIGTERM to all at once, then wait for each (SIGKILL after `grace`); exit statuses."""
    for process in processes:
        process.terminate()
    return [process.stop(grace) for process in processes]
