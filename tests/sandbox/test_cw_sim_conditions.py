"""The ConnectWise `conditions` language: what matches, what is rejected, and that quoted text stays literal."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cwqbo.sandbox.connectwise.conditions import ConditionError, compile_conditions, error_body

ROWS = [
    {"id": 1, "invoiceNumber": "1001", "total": Decimal("100.50"), "date": "2026-09-01T00:00:00Z",
     "status": {"id": 3, "name": "Closed"}, "company": {"name": "O'Brien & Søn"}, "taxableFlag": True, "po": None},
    {"id": 2, "invoiceNumber": "1002", "total": Decimal("-20.00"), "date": "2026-09-15T00:00:00Z",
     "status": {"id": 1, "name": "New"}, "company": {"name": 'Smith "Quoted" Co'}, "taxableFlag": False, "po": "PO-7"},
    {"id": 3, "invoiceNumber": "1003", "total": Decimal("0"), "date": "2026-10-01T00:00:00Z",
     "status": {"id": 4, "name": "Closed - Paid"}, "company": {"name": "Acme: West"}, "taxableFlag": False,
     "po": "x"},
    {"id": 4, "invoiceNumber": "1004", "total": Decimal("5"), "date": "2026-10-02T00:00:00Z",
     "status": {"id": 3, "name": "Closed"}, "company": {"name": 'a\\b'}, "taxableFlag": True, "po": ""},
]


def ids(text: str) -> list[int]:
    pred = compile_conditions(text)
    return [r["id"] for r in ROWS if pred(r)]


@pytest.mark.parametrize("text,expected", [
    ("id = 2", [2]),
    ("id != 2", [1, 3, 4]),
    ("total > 0", [1, 4]),
    ("total >= 0", [1, 3, 4]),
    ("total < 0", [2]),
    ("total <= 5", [2, 3, 4]),
    ("total = 100.5", [1]),
    ('status/name = "closed"', [1, 4]),
    ("status/id in (3, 4)", [1, 3, 4]),
    ("status/id not in (3,4)", [2]),
    ('company/name contains "west"', [3]),
    ('company/name like "O%Søn"', [1]),
    ('company/name not like "%Co"', [1, 3, 4]),
    ('invoiceNumber in ("1001","1003")', [1, 3]),
    ("date >= [2026-09-15T00:00:00Z] and date < [2026-10-02T00:00:00Z]", [2, 3]),
    ("taxableFlag = true", [1, 4]),
    ("taxableFlag = FALSE", [2, 3]),
    ("po = null", [1]),
    ("po != null", [2, 3, 4]),
    ("id = 1 OR id = 2 and total < 0", [1, 2]),
    ("(id = 1 or id = 2) and total < 0", [2]),
    ("((id=1))", [1]),
    ("", [1, 2, 3, 4]),
])
def test_operators_match_like_the_api(text: str, expected: list[int]) -> None:
    assert ids(text) == expected


def test_escaped_quotes_and_backslashes_are_literal_characters() -> None:
    assert ids(r'company/name = "Smith \"Quoted\" Co"') == [2]
    assert ids(r'company/name = "a\\b"') == [4]
    assert ids('company/name = "O\'Brien & Søn"') == [1]


def test_injection_attempt_inside_a_string_stays_a_literal() -> None:
    # a client that escapes properly sends this: it must match nothing, not "or id > 0"
    assert ids(r'company/name = "x\" or id > 0 or company/name = \"y"') == []
    assert ids('company/name contains "%"') == []


@pytest.mark.parametrize("text", [
    "id = ", "id == 2", "id 2", '"a" = id', "id in 1,2", "id in (1,2", "(id = 1", "id = 1)", 'name = "open',
    r'name = "bad \n escape"', "date > [not-a-date]", "id = 1 and", "id = 1 xor id = 2", "name like 3", "a/ = 1",
    "id = 1 id = 2", "not id = 1", "id not = 1", "id = @",
])
def test_bad_syntax_is_rejected(text: str) -> None:
    with pytest.raises(ConditionError):
        compile_conditions(text)


def test_error_body_has_the_api_shape() -> None:
    with pytest.raises(ConditionError) as info:
        compile_conditions("id = = 3")
    body = error_body(info.value)
    assert body["code"] == "InvalidObject"
    assert "position 5" in body["message"]
    assert body["errors"][0]["field"] == "conditions"


def test_index_hint_finds_a_conjunct_every_match_must_satisfy() -> None:
    from cwqbo.sandbox.connectwise.conditions import index_hint, parse

    assert index_hint(parse("billingLogId in (1, 2) and total > 0")) == (("billingLogId",), (Decimal(1), Decimal(2)))
    assert index_hint(parse("total > 0 and invoice/id = 7")) == (("invoice", "id"), (Decimal(7),))
    assert index_hint(parse("id = 1 or id = 2")) is None  # an `or` may match outside either value
    assert index_hint(parse("id != 1")) is None


def test_rewrite_fields_maps_every_path() -> None:
    from cwqbo.sandbox.connectwise.conditions import matches, parse, rewrite_fields

    node = rewrite_fields(parse("lastUpdated > [2026-09-02T00:00:00Z] and id = 1"),
                          lambda p: ("_info", "lastUpdated") if p == ("lastUpdated",) else p)
    assert matches(node, {"id": 1, "_info": {"lastUpdated": "2026-09-03T00:00:00Z"}})
    assert not matches(node, {"id": 1, "lastUpdated": "2026-09-03T00:00:00Z"})
