"""Keep the cyclic garbage collector off the objects a sync run starts with.

Every full (oldest-generation) collection walks every tracked object in the process. During a run those are
mostly objects that will outlive it: the imported modules (typer, rich, httpx, sqlite-utils ...), the settings, and
whatever the embedding program holds. `gc.freeze()` moves them to CPython's permanent generation, which
collections skip, so a collection triggered by the run's own allocations walks the run's objects only. It changes
no object's lifetime: reference counting still frees whatever is dropped, and `unfreeze` at the end of the run
hands the frozen objects back to the collector, so a cycle among them becomes collectable again.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0  # nested or concurrent runs in one process share one freeze, thawed by the last to finish
_owner = False  # whether that freeze is ours (a program that froze its own heap keeps its freeze)


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Freeze the objects alive now for the body's duration; the first to enter freezes, the last to leave thaws."""
    global _depth, _owner
    with _lock:
        if _depth == 0:
            _owner = gc.get_freeze_count() == 0
            if _owner:
                gc.freeze()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _owner:
                gc.unfreeze()
                _owner = False
