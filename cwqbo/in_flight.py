"""A few independent requests at once: QBO allows 10 in flight on its 500-a-minute budget, and lookups, probes and
customer creates are independent of each other (the client's throttle still counts every request); ConnectWise's
chunked reads of one step are independent too.

The worker threads are started once and shared: a run makes hundreds of these calls, and starting a pool of
threads for each cost more CPU than the work it spread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar, cast

T = TypeVar("T")
R = TypeVar("R")

LIMIT = 8  # of QBO's 10 in flight: leaves room for a refresh or another process of the same company

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
_worker = threading.local()  # set on the shared threads: a call made from one runs its items in turn


def _shared_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=LIMIT, thread_name_prefix="cwqbo-io", initializer=_mark_worker)
        return _pool


def _mark_worker() -> None:
    _worker.active = True


def in_flight(fn: Callable[[T], R], items: Sequence[T], limit: int = LIMIT) -> list[R]:
    """`fn` over `items`, at most `limit` (and LIMIT) at once, results in order; an exception is raised after all
    finished.

    A call from inside another's `fn` runs its items one after the other: it never waits for the shared threads
    it may itself be holding."""
    if len(items) <= 1 or limit <= 1 or getattr(_worker, "active", False):
        return [fn(item) for item in items]
    todo = iter(range(len(items)))
    take = threading.Lock()
    results: list[R | None] = [None] * len(items)
    errors: dict[int, BaseException] = {}

    def runner() -> None:
        while True:
            with take:
                i = next(todo, None)
            if i is None:
                return
            try:
                results[i] = fn(items[i])
            except BaseException as exc:  # noqa: BLE001 - raised on the calling thread, in item order
                errors[i] = exc

    pool = _shared_pool()
    runners: list[Future[None]] = [pool.submit(runner) for _ in range(min(limit, LIMIT, len(items)))]
    for r in runners:
        r.result()
    if errors:
        raise errors[min(errors)]
    return cast(list[R], results)  # every slot was filled: no item failed
