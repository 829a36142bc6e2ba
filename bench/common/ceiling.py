"""The ceiling: what one uvicorn worker of this interpreter carries on this machine, now. Every
benchmark measures it at the start of its run (`measure_ceiling`) and shows its own figure as a
share of it, so that figures taken on a shared machine at different times can be compared.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.common.dossiers import AGENCIES, bodies_by_agency
from bench.common.load import LevelResult, close_clerks, drive, seat_clerks
from bench.common.machine import CpuSnapshot, cpu_between
from bench.common.processes import ServiceProcess, start_services, stop_services
from bench.common.report import ms


class CeilingProcess(ServiceProcess):
    """`python -m bench.ceiling_app --port P`: a bare FastAPI endpoint validating the dossier
    body (the ceiling of what one uvicorn worker of this interpreter carries here)."""

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "bench.ceiling_app", "--port", str(self.port)]


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
        "benchmark's generator (`bench/common/`: `HttpConnection`, `drive`, the same "
        f"bodies), {ceiling.level.concurrency} clerks posting back to back on keep-alive "
        f"connections for {ceiling.level.seconds:.0f} s after a {ceiling.warm_up:g} s warm-up. "
        "Its requests/s is what one uvicorn worker carries on this machine at that moment; "
        f"{headline} is shown as a share of it. On a shared machine a figure moves with what "
        "else runs, and so does the ceiling measured beside it: compare runs of different "
        "days by their shares of the ceiling rather than by their raw figures (which "
        "assumes both suffer alike from the other work)."
    )
