"""cwqbo.pagination: one paging loop (page numbers for ConnectWise, offsets for QBO) that refuses to loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cwqbo import pagination
from cwqbo.errors import RemoteError

Row = dict[str, Any]


def numbered(total: int, page_size: int) -> tuple[Callable[[int], tuple[list[Row], None]], list[int]]:
    """A well-behaved server paging `total` rows by page number; records which pages were asked for."""
    asked: list[int] = []

    def fetch(page: int) -> tuple[list[Row], None]:
        asked.append(page)
        return [{"id": i} for i in range((page - 1) * page_size + 1, min(page * page_size, total) + 1)], None

    return fetch, asked


def test_page_numbers_until_a_short_page() -> None:
    fetch, asked = numbered(7, 3)
    pages = list(pagination.paginate(fetch, pagination.by_page_number(3), start=1, service="S", path="/p",
                                     ident=lambda r: r["id"]))
    assert [[r["id"] for r in p] for p in pages] == [[1, 2, 3], [4, 5, 6], [7]]
    assert asked == [1, 2, 3]


def test_an_exactly_full_last_page_costs_one_empty_page() -> None:
    fetch, asked = numbered(6, 3)
    assert sum(len(p) for p in pagination.paginate(fetch, pagination.by_page_number(3), start=1, service="S",
                                                   path="/p")) == 6
    assert asked == [1, 2, 3]


def test_offsets_like_qbo_startposition() -> None:
    rows = [{"Id": str(i)} for i in range(1, 26)]
    asked: list[int] = []

    def fetch(start: int) -> tuple[list[Row], None]:
        asked.append(start)
        return rows[start - 1:start - 1 + 10], None

    got = [r for p in pagination.paginate(fetch, pagination.by_offset(10), start=1, service="QuickBooks Online",
                                          path="/query (Customer)", unit="STARTPOSITION", ident=lambda r: r["Id"])
           for r in p]
    assert got == rows and asked == [1, 11, 21]


def test_a_next_position_that_does_not_move_forward_is_refused() -> None:
    def fetch(page: int) -> tuple[list[Row], int]:
        return [{"id": page * 10}], page  # ids differ, so only the position guard can stop this

    with pytest.raises(RemoteError, match=r"ConnectWise's next page for /finance/invoices points back to page 2 "
                                          r"\(after page 2\); refusing to loop") as info:
        list(pagination.paginate(fetch, lambda pos, items, extra: 2, start=1, service="ConnectWise",
                                 path="/finance/invoices", ident=lambda r: r["id"]))
    assert info.value.exit_code == 4 and info.value.hint


def test_a_page_repeating_the_previous_first_id_is_refused_before_it_is_yielded() -> None:
    def fetch(start: int) -> tuple[list[Row], None]:
        return [{"Id": "1"}, {"Id": "2"}], None  # a server that ignores STARTPOSITION

    yielded: list[list[Row]] = []
    with pytest.raises(RemoteError, match=r"QuickBooks Online sent the same page again for /query \(Term\): "
                                          r"STARTPOSITION 3 starts with the previous page's first record \(id 1\)"):
        for page in pagination.paginate(fetch, pagination.by_offset(2), start=1, service="QuickBooks Online",
                                        path="/query (Term)", unit="STARTPOSITION", ident=lambda r: r["Id"]):
            yielded.append(page)
    assert len(yielded) == 1  # the repeat never reaches the caller


def test_without_ids_only_the_position_guard_applies() -> None:
    fetch, asked = numbered(5, 2)

    def anonymous(page: int) -> tuple[list[Row], None]:
        return [{} for _ in fetch(page)[0]], None  # records without ids: every page "starts" the same

    pages = list(pagination.paginate(anonymous, pagination.by_page_number(2), start=1, service="S", path="/p",
                                     ident=lambda r: r.get("id")))
    assert [len(p) for p in pages] == [2, 2, 1] and asked == [1, 2, 3]


def test_an_empty_first_page_yields_nothing() -> None:
    assert list(pagination.paginate(lambda p: ([], None), pagination.by_page_number(10), start=1, service="S",
                                    path="/p")) == []
