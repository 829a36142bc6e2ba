"""A served process's heap once started (core.runtime.heap): what exists is frozen out of
the collector's full passes, and what is made afterwards is still collected."""

from __future__ import annotations

import gc
import weakref

from services.core.runtime import heap


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settle_freezes_what_exists_and_later_cycles_are_still_collected() -> None:
    gc.unfreeze()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after startup
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
