"""A served process's heap, once started, kept out of the garbage collector's full passes.

Why. CPython's cyclic collector walks every tracked object at a full (oldest generation)
pass. A started service holds a few hundred thousand of them that live as long as the
process (modules, FastAPI's and SQLAlchemy's structures, pydantic's validators), so each
full pass took up to 185 ms, with the event loop stopped: measured in `motcua up` at 64
clerks (bench/README.md, "Intake throughput"), twelve of them in 25 s, 1.9 s in all, and
every request in flight waited for each one — most of the p99. `gc.freeze()` moves what
exists once startup is over to a generation the collector never walks; measured the same
way, the full passes took at most 16 ms, 0.18 s in all.

What it costs. Nothing of the frozen objects is lost when they are dropped: reference
counting frees them as before; only a reference cycle made of frozen objects alone would
stay until the process ends, and what startup builds is kept for the process's life.
"""

from __future__ import annotations

import gc


def settle() -> None:
    """Collect what startup left behind, then freeze the rest (call once the process
    serves: every module imported, every service started)."""
    gc.collect()
    gc.freeze()


__all__ = ["settle"]
