"""The QBO query grammar: what parses, what QBO refuses, and how rows are filtered and paged."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cwqbo.sandbox.quickbooks.query import QueryError, execute, parse

ROWS = [
    {"Id": "1", "DisplayName": "Amy's Bird Sanctuary", "Active": True, "Balance": Decimal("739.00"),
     "CustomerRef": {"value": "7", "name": "x"}, "MetaData": {"LastUpdatedTime": "2026-01-02T00:00:00-08:00"}},
    {"Id": "2", "DisplayName": "Robertson & Associates", "Active": True, "Balance": Decimal("315.00"),
     "CustomerRef": {"value": "8"}, "MetaData": {"LastUpdatedTime": "2026-01-01T00:00:00-08:00"}},
    {"Id": "10", "DisplayName": "Cool Cars", "Active": False, "Balance": Decimal("0"),
     "CustomerRef": {"value": "7"}, "MetaData": {"LastUpdatedTime": "2026-01-03T00:00:00-08:00"}},
]


def ids(query: str) -> list[str]:
    page, _ = execute(parse(query), ROWS)
    return [r["Id"] for r in page]


def test_keywords_are_case_insensitive_and_escaped_quotes_match() -> None:
    assert ids(r"select * from Customer where DisplayName = 'Amy\'s Bird Sanctuary'") == ["1"]
    assert ids(r"SeLeCt * FrOm Customer WhErE DisplayName = 'amy\'s bird sanctuary'") == ["1"]


def test_in_like_comparison_and_reference_fields() -> None:
    assert ids("select * from Customer where Id IN ('1', '10')") == ["1", "10"]
    assert ids("select * from Customer where DisplayName LIKE '%&%'") == ["2"]
    assert ids("select * from Customer where DisplayName LIKE 'Cool%'") == ["10"]
    assert ids("select * from Customer where Balance > '300.00' AND Balance < '500'") == ["2"]
    assert ids("select * from Customer where CustomerRef = '7'") == ["1", "10"]
    assert ids("select * from Customer where MetaData.LastUpdatedTime >= '2026-01-02'") == ["1", "10"]
    assert ids("select * from Customer where Active = false") == ["10"]


def test_order_paging_and_default_order_by_numeric_id() -> None:
    assert ids("select * from Customer") == ["1", "2", "10"]
    assert ids("select * from Customer orderby Balance desc") == ["1", "2", "10"]
    assert ids("select * from Customer ORDERBY DisplayName STARTPOSITION 2 MAXRESULTS 1") == ["10"]
    q = parse("select * from Customer maxresults 5000")
    assert q.max_results == 1000
    assert parse("select * from Customer").max_results == 100


def test_count_and_projection() -> None:
    q = parse("select count(*) from Customer where Active = true")
    assert q.select == "count"
    assert execute(q, ROWS)[1] == 2
    page, _ = execute(parse("select Id, DisplayName from Customer where Id = '2'"), ROWS)
    assert page == [{"Id": "2", "DisplayName": "Robertson & Associates", "domain": "QBO", "sparse": True}]


@pytest.mark.parametrize("bad", [
    "select * from Customer where DisplayName = 'a' OR Id = '1'",
    "select * from Customer where DisplayName = 'Amy's'",
    "select * Customer",
    "select * from Customer where",
    "delete from Customer",
    "",
    "select * from Customer where DisplayName = \u2019x\u2019",
])
def test_rejected_statements_are_parse_errors(bad: str) -> None:
    with pytest.raises(QueryError) as exc:
        parse(bad)
    assert exc.value.code == "4000"
    assert "QueryParserError" in exc.value.detail


def test_sku_extension_of_star_is_accepted() -> None:
    q = parse("SELECT *, Sku FROM Item")
    assert q.select == "*" and q.entity == "Item"
