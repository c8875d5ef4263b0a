"""CPython's cyclic collector, relaxed for the length of a sync run.

A sync decodes large answers (a ConnectWise page, a QBO batch answer) into short-lived dicts and lists. At the default
threshold a young collection runs every 700 net allocations of containers, and objects alive at that moment (the page
being decoded) are promoted, so older generations fill up and full collections follow: the 10,000-invoice bench
(building its sandbox, the run and an idle re-run) made about 5,200 young and 26 full collections, each full one
walking every live object. With the young threshold at 10,000 during the runs most of those objects are already
freed by reference counting when a collection comes: about 600 young and 5 full collections.

Reference cycles are still collected, only later. Each HTTP exchange leaves one (httpx's response and its stream),
so a page's body can wait up to 10,000 allocations longer; the `--memory` bench shows what that costs at 100,000
invoices. Thresholds are the process's, so they are set when the first run starts and put back when the last ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()
_runs = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed() -> Iterator[None]:
    """Raise the young generation's threshold to YOUNG_THRESHOLD while the body runs (never lower it, and leave a
    disabled collector, threshold 0, alone); the thresholds found are restored when the last overlapping run ends."""
    global _runs, _saved
    with _lock:
        if _runs == 0:
            _saved = gc.get_threshold()
            young, older, oldest = _saved
            if 0 < young < YOUNG_THRESHOLD:
                gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
