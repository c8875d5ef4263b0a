"""A few independent requests at once: QBO allows 10 in flight on its 500-a-minute budget, and lookups, probes and
customer creates are independent of each other (the client's throttle still counts every request); ConnectWise's
chunked reads of one step are independent too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

LIMIT = 8  # of QBO's 10 in flight: leaves room for a refresh or another process of the same company


def in_flight(fn: Callable[[T], R], items: Sequence[T], limit: int = LIMIT) -> list[R]:
    """`fn` over `items`, at most `limit` at once, results in order; an exception is raised after all finished."""
    if len(items) <= 1 or limit <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(limit, len(items)), thread_name_prefix="cwqbo-io") as pool:
        futures = [pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]
