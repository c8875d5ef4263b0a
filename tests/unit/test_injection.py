"""Any text a user (or a ConnectWise record) supplies stays a literal in the queries we send.

Parsed with the simulators' real parsers: if escaping were wrong, a company named `x" or id>0 or name="`
would widen a ConnectWise query, and a customer named `x' AND Active = false` would change a QBO lookup.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cwqbo.connectwise import conditions as cwc
from cwqbo.quickbooks import query as q
from cwqbo.sandbox.connectwise import conditions as cwparser
from cwqbo.sandbox.quickbooks import query as qbo_query

ATTACKS = ['x" or id>0 or name="', 'x\\" or 1=1 or name=\\"', "\\", '"', "\\\\\"", 'a" and (id = 1) and b="',
           "x' OR '1'='1", "x' AND Active = false AND Name = '", "\\'", "'", "O'Brien", "😀'\"\\",
           "line\nbreak\ttab", "x') OR (1=1", "null", "[2026-01-01T00:00:00Z]", "1 or 1=1", ")", "%27%22",
           "\x00nul", "\u2028sep", "café ' \" \\ :", ""]
any_text = st.one_of(st.sampled_from(ATTACKS), st.text(), st.text(alphabet=st.sampled_from("\"'\\ ()=,[]andor")))
CW_FIELDS = ["company/name", "invoiceNumber", "customerPO", "company/identifier"]


@settings(max_examples=400, deadline=None)
@given(any_text, st.sampled_from(CW_FIELDS), st.sampled_from(["=", "!=", "contains", "like", "not like", "<"]))
def test_cw_condition_value_is_one_comparison_with_exactly_that_value(value: str, field: str, op: str) -> None:
    node = cwparser.parse(cwc.cmp(field, op, value))
    assert isinstance(node, cwparser.Compare), f"extra clauses from {value!r}: {node}"
    assert node.field == tuple(field.split("/")) and node.value == value


@settings(max_examples=200, deadline=None)
@given(any_text, st.integers(min_value=0, max_value=10**9))
def test_cw_and_of_hostile_value_keeps_exactly_two_clauses(value: str, ident: int) -> None:
    node = cwparser.parse(cwc.and_(cwc.eq("company/name", value), cwc.eq("id", ident)))
    assert isinstance(node, cwparser.BoolOp) and node.op == "and" and len(node.parts) == 2
    first, second = node.parts
    assert isinstance(first, cwparser.Compare) and first.value == value
    assert isinstance(second, cwparser.Compare) and second.field == ("id",) and second.value == ident


@settings(max_examples=150, deadline=None)
@given(st.lists(any_text, min_size=1, max_size=6))
def test_cw_in_list_of_hostile_values_round_trips(values: list[str]) -> None:
    node = cwparser.parse(cwc.in_("invoiceNumber", values))
    assert isinstance(node, cwparser.Compare) and node.op == "in" and list(node.value) == values


def test_cw_hostile_value_matches_only_the_record_with_that_exact_name() -> None:
    records = [{"id": 1, "company": {"name": 'x" or id>0 or name="'}}, {"id": 2, "company": {"name": "Acme"}},
               {"id": 3, "company": {"name": "x"}}]
    match = cwparser.compile_conditions(cwc.eq("company/name", 'x" or id>0 or name="'))
    assert [r["id"] for r in records if match(r)] == [1]


@pytest.mark.parametrize("field", ['name" or 1=1', "a b", "a;b", "", "1abc", "a/(b)"])
def test_cw_field_names_cannot_carry_syntax(field: str) -> None:
    with pytest.raises(ValueError):
        cwc.eq(field, "x")


@settings(max_examples=400, deadline=None)
@given(any_text, st.sampled_from(["DisplayName", "DocNumber", "Name", "PrivateNote"]))
def test_qbo_literal_is_one_condition_with_exactly_that_value(value: str, field: str) -> None:
    parsed = qbo_query.parse(q.select("Customer", q.eq(field, value)))
    assert len(parsed.where) == 1, f"extra clauses from {value!r}: {parsed.where}"
    cond = parsed.where[0]
    assert cond.field == field and cond.op == "=" and cond.values == (value,)
    assert parsed.start_position == 1 and parsed.max_results == q.MAX_RESULTS  # paging not hijacked


@settings(max_examples=200, deadline=None)
@given(any_text, any_text)
def test_qbo_two_hostile_conditions_stay_two(a: str, b: str) -> None:
    parsed = qbo_query.parse(q.select("Invoice", [q.eq("DocNumber", a), q.eq("PrivateNote", b)], order_by="Id"))
    assert [(c.field, c.values) for c in parsed.where] == [("DocNumber", (a,)), ("PrivateNote", (b,))]
    assert parsed.order_by == [("Id", False)]


@settings(max_examples=150, deadline=None)
@given(st.lists(any_text, min_size=1, max_size=6))
def test_qbo_in_list_of_hostile_values_round_trips(values: list[str]) -> None:
    parsed = qbo_query.parse(q.count("Customer", q.in_("DisplayName", values)))
    assert len(parsed.where) == 1 and parsed.where[0].op == "IN" and list(parsed.where[0].values) == values


def test_qbo_hostile_name_finds_only_that_customer() -> None:
    rows = [{"Id": "1", "DisplayName": "x' OR '1'='1"}, {"Id": "2", "DisplayName": "x"},
            {"Id": "3", "DisplayName": "Other"}]
    found, _ = qbo_query.execute(qbo_query.parse(q.select("Customer", q.eq("DisplayName", "x' OR '1'='1"))), rows)
    assert [r["Id"] for r in found] == ["1"]


@pytest.mark.parametrize("bad", ["Invoice WHERE 1=1", "Customer;", "", "Invoice--"])
def test_qbo_entity_and_field_names_cannot_carry_syntax(bad: str) -> None:
    with pytest.raises(ValueError):
        q.select(bad)
    with pytest.raises(ValueError):
        q.eq(bad or " ", "x")


def test_numbers_are_never_quoted_or_floated() -> None:
    assert q.literal(Decimal("10.10")) == "10.10" and cwc.literal(Decimal("-0.01")) == "-0.01"
    for bad in (1.5, float("nan")):
        with pytest.raises(TypeError):
            q.literal(bad)
        with pytest.raises(TypeError):
            cwc.literal(bad)
