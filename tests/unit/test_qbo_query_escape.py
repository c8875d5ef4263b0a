"""QBO query building: literals survive the simulator's parser exactly, whatever the text."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cwqbo.quickbooks import query as q
from cwqbo.sandbox.quickbooks import query as qbo_query


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_string_round_trips_through_the_parser(value: str) -> None:
    parsed = qbo_query.parse(q.select("Customer", q.eq("DisplayName", value)))
    assert parsed.where[0].values == (value,)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from("ab'\\ ,()=")), min_size=1, max_size=5))
def test_in_lists_round_trip(values: list[str]) -> None:
    parsed = qbo_query.parse(q.select("Invoice", q.in_("DocNumber", values)))
    assert parsed.where[0].op == "IN" and list(parsed.where[0].values) == values


def test_escape_examples() -> None:
    assert q.escape("Amy's Bird Sanctuary") == "Amy\\'s Bird Sanctuary"
    assert q.escape("a\\b") == "a\\\\b"
    assert q.literal("O'Brien") == "'O\\'Brien'"
    # the recorded request: WHERE DisplayName = 'Amy\'s Bird Sanctuary'
    assert q.eq("DisplayName", "Amy's Bird Sanctuary") == "DisplayName = 'Amy\\'s Bird Sanctuary'"


def test_literals_of_other_types() -> None:
    assert q.literal(True) == "true" and q.literal(7) == "7" and q.literal(Decimal("300.00")) == "300.00"
    assert q.literal(dt.date(2026, 1, 31)) == "'2026-01-31'"
    assert q.in_list(["a", 1]) == "('a', 1)"
    with pytest.raises(TypeError):
        q.literal(1.5)
    with pytest.raises(ValueError):
        q.in_list([])


def test_select_builds_paging_and_rejects_injection() -> None:
    text = q.select("Invoice", [q.eq("DocNumber", "1"), q.eq("Active", True)], start=1001, order_by="Id")
    assert text == ("SELECT * FROM Invoice WHERE DocNumber = '1' AND Active = true ORDERBY Id "
                    "STARTPOSITION 1001 MAXRESULTS 1000")
    parsed = qbo_query.parse(text)
    assert parsed.start_position == 1001 and parsed.max_results == 1000 and len(parsed.where) == 2
    for bad in (lambda: q.select("Invoice; drop"), lambda: q.select("Invoice", max_results=1001),
                lambda: q.select("Invoice", start=0), lambda: q.eq("Name = 'x' OR 1", "y")):
        with pytest.raises(ValueError):
            bad()


def test_count_statement() -> None:
    text = q.count("Invoice", q.eq("DocNumber", "A'1"))
    assert text == "SELECT COUNT(*) FROM Invoice WHERE DocNumber = 'A\\'1'"
    assert qbo_query.parse(text).select == "count"
