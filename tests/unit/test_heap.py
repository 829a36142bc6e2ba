"""A served process's heap once started (core.runtime.heap): what exists is frozen out of
the collector's full passes, the young generation is larger, and what is made afterwards is
still collected."""

from __future__ import annotations

import json
import subprocess
import sys

from services.core.runtime.heap import YOUNG_THRESHOLD

# In a process of its own: the test run's collector is left as it is.
SCRIPT = """
import gc, json, weakref
from services.core.runtime import heap

class Node:
    other = None

before = gc.get_threshold()
heap.settle()
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after startup
gone = weakref.ref(a)
del a, b
gc.collect()
print(json.dumps({
    "before": before,
    "after": gc.get_threshold(),
    "frozen": gc.get_freeze_count(),
    "cycle_collected": gone() is None,
}))
"""


def test_settle_freezes_what_exists_and_later_cycles_are_still_collected() -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    seen = json.loads(out)
    assert seen["frozen"] > 1000  # the modules imported, and what they built
    assert seen["cycle_collected"]
    assert seen["before"][0] != YOUNG_THRESHOLD
    assert seen["after"] == [YOUNG_THRESHOLD, seen["before"][1], seen["before"][2]]
