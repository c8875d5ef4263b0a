"""One paging loop for both APIs, which refuses to go round in circles.

ConnectWise pages by number (`page=N`, the next number from `Link: rel="next"` or "after a full page");
QuickBooks Online by offset (`STARTPOSITION`/`MAXRESULTS`). Both are "fetch the page at position P, then ask a
rule for the next position", so `paginate` takes those two functions. A server that misbehaves must not make
a sync loop forever (or store a page twice): a next position that does not move forward, or a page whose first
record is the previous page's first record, stops the loop with a `RemoteError` that names the path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from cwqbo.errors import RemoteError

R = TypeVar("R")  # a record
X = TypeVar("X")  # what else a fetch returns for the next-position rule (e.g. the response, for its Link header)

NextPosition = Callable[[int, Sequence[object], object], "int | None"]


def paginate(fetch: Callable[[int], tuple[list[R], X]], next_position: Callable[[int, list[R], X], int | None], *,
             start: int, service: str, path: str, unit: str = "page",
             ident: Callable[[R], object] | None = None) -> Iterator[list[R]]:
    """Yield each non-empty page, fetched with `fetch(position)`; `next_position(position, items, extra)` gives
    the next position or None after the last page. An empty page ends the loop.

    `ident(record)` is a record's id, for the repeated-page guard (None: no guard). `service`, `path` and `unit`
    ("page", "STARTPOSITION") only word the error.
    """
    position = start
    previous_first: object = None
    while True:
        items, extra = fetch(position)
        if not items:
            return
        first = ident(items[0]) if ident is not None else None
        if first is not None and first == previous_first:
            raise RemoteError(f"{service} sent the same page again for {path}: {unit} {position} starts with the "
                              f"previous page's first record (id {first}); refusing to loop",
                              hint=f"{service} is not paging as it should; try again later")
        yield items
        nxt = next_position(position, items, extra)
        if nxt is None:
            return
        if nxt <= position:
            raise RemoteError(f"{service}'s next page for {path} points back to {unit} {nxt} (after {unit} "
                              f"{position}); refusing to loop",
                              hint=f"{service} is not paging as it should; try again later")
        previous_first = first
        position = nxt


def by_page_number(page_size: int) -> NextPosition:
    """Page numbers: after a full page comes page N + 1; a short page is the last."""

    def rule(position: int, items: Sequence[object], extra: object) -> int | None:
        return position + 1 if len(items) >= page_size else None

    return rule


def by_offset(page_size: int) -> NextPosition:
    """Offsets (1-based, like QBO's STARTPOSITION): after a full page, skip the rows read; a short page is the last."""

    def rule(position: int, items: Sequence[object], extra: object) -> int | None:
        return position + len(items) if len(items) >= page_size else None

    return rule
