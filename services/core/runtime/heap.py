"""A served process's heap and CPython's cyclic garbage collector.

Why. The collector stops the event loop while it walks the objects of a generation, and
every request in flight waits for it.

- A full pass (the oldest generation) walks every tracked object. A started service holds a
  few hundred thousand that live as long as the process (modules, FastAPI's and SQLAlchemy's
  structures, pydantic's validators), so each full pass took up to 185 ms: measured in
  `motcua up` at 64 clerks (bench/README.md, "Intake throughput"), twelve of them in 25 s,
  1.9 s in all, most of the p99. `gc.freeze()` moves what exists once startup is over to a
  generation the collector never walks; measured the same way, the full passes took at most
  16 ms, 0.18 s in all.
- Those 16 ms came 10-20 times a minute under load, with a young pass every few
  milliseconds. A young pass runs each time 700 more container objects were made than freed
  (CPython's default), and under load a request's objects live for its whole batch, tens of
  milliseconds: each young pass found them alive and promoted them, until the old generation
  had grown by a quarter and a full pass ran. With `YOUNG_THRESHOLD` objects a young pass
  comes after those requests are answered and their objects freed, so little is promoted.
  Measured in `motcua up` at 32 clerks on 2026-12-03, alternate runs of 20 s: the intake
  process spent 0.1 s in the collector against 1.5 s, with no full pass under load against
  19-22; the second process 0.6-0.8 s against 1.9-2.2 s; 955-1,193 dossiers a second at p99
  58-62 ms against 840-1,009 at p99 81-87.

What it costs. Nothing of the frozen objects is lost when they are dropped: reference
counting frees them as before; only a reference cycle made of frozen objects alone would
stay until the process ends, and what startup builds is kept for the process's life. A
cycle of garbage waits for a later young pass than it would have: at most `YOUNG_THRESHOLD`
objects more, a few MiB.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # CPython's default is 700; the older generations keep theirs (10, 10)


def settle() -> None:
    """Collect what startup left behind, freeze the rest, and set the young generation's
    threshold (call once the process serves: every module imported, every service started)."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)


__all__ = ["YOUNG_THRESHOLD", "settle"]
