"""ConnectWise conditions: values are always literals, never syntax."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cwqbo.connectwise import conditions as c

try:
    from cwqbo.sandbox.connectwise import conditions as simparser
except ImportError:  # the simulator's parser is optional for these tests
    simparser = None  # type: ignore[assignment]


def reference_string(text: str) -> str:
    """Tiny reference reader for one double-quoted literal (backslash escapes the next char)."""
    assert text[0] == '"' and text[-1] == '"'
    out, i = [], 1
    while i < len(text) - 1:
        ch = text[i]
        if ch == "\\":
            i += 1
            out.append(text[i])
        else:
            assert ch != '"', "unescaped quote inside literal"
            out.append(ch)
        i += 1
    assert i == len(text) - 1, "literal ended early"
    return "".join(out)


def parsed_value(condition: str) -> object:
    assert simparser is not None
    node = simparser.parse(condition)
    return node.value


@pytest.mark.parametrize("value, expected", [
    ('Acme "West"', r'"Acme \"West\""'),
    ("C:\\path", r'"C:\\path"'),
    ('ends with backslash\\', '"ends with backslash\\\\"'),
    (42, "42"),
    (Decimal("10.50"), "10.50"),
    (True, "true"),
    (False, "false"),
    (None, "null"),
    (date(2026, 1, 2), "[2026-01-02T00:00:00Z]"),
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))), "[2026-01-02T08:04:05Z]"),
])
def test_literal_forms(value: object, expected: str) -> None:
    assert c.literal(value) == expected


@pytest.mark.parametrize("bad", [1.5, object(), [1], {"a": 1}, Decimal("NaN")])
def test_literal_rejects_inexact_or_unknown(bad: object) -> None:
    with pytest.raises(TypeError):
        c.literal(bad)


def test_builders() -> None:
    assert c.eq("company/name", "A") == 'company/name="A"'
    assert c.cmp("date", ">=", date(2026, 1, 1)) == "date>=[2026-01-01T00:00:00Z]"
    assert c.cmp("name", "like", "Acme%") == 'name like "Acme%"'
    assert c.in_("invoice/id", [1, 2, 3]) == "invoice/id in (1, 2, 3)"
    assert c.and_(c.eq("a", 1), None, c.or_(c.eq("b", 2), c.eq("c", 3))) == "(a=1) and ((b=2) or (c=3))"
    assert c.and_(c.eq("a", 1)) == "a=1"
    assert c.and_() == ""


@pytest.mark.parametrize("field", ["name) or (id", 'x"', "1abc", "a b", "", "a=1"])
def test_field_names_are_validated(field: str) -> None:
    with pytest.raises(ValueError):
        c.eq(field, 1)


def test_bad_operator_and_empty_in() -> None:
    with pytest.raises(ValueError):
        c.cmp("id", "= 1 or id", 2)
    with pytest.raises(ValueError):
        c.in_("id", [])


def _chunks_by_quote(field: str, values: list[object], extra: str | None, max_chars: int) -> list[str]:
    """The chunking as first written: every value measured by urllib's quote and written by `in_`."""
    from urllib.parse import quote

    def size(text: str) -> int:
        return len(quote(text, safe=""))

    out: list[str] = []
    base, sep = size(c.and_(f"{field} in ()", extra)), size(", ")
    batch: list[object] = []
    used = base
    for v in values:
        add = size(c.literal(v)) + (sep if batch else 0)
        if batch and used + add > max_chars:
            out.append(c.and_(c.in_(field, batch), extra))
            batch, used, add = [], base, size(c.literal(v))
        if base + add > max_chars:
            raise ValueError("too long")
        batch.append(v)
        used += add
    if batch:
        out.append(c.and_(c.in_(field, batch), extra))
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-10**12, 10**12), st.text(max_size=12),
                          st.decimals(allow_nan=False, allow_infinity=False, places=2)), max_size=60),
       st.sampled_from([None, 'closedFlag=true', 'name="a b"']), st.integers(90, 400))
def test_in_chunks_match_the_quote_measured_chunking(values: list[object], extra: str | None, budget: int) -> None:
    """Measuring plain ids without quote must split exactly where quote's lengths split: same URLs, same calls."""
    try:
        expected = _chunks_by_quote("invoice/id", values, extra, budget)
    except TypeError:
        return  # a value no condition can hold
    except ValueError:
        with pytest.raises(ValueError):
            list(c.in_chunks("invoice/id", values, extra=extra, max_chars=budget))
        return
    assert list(c.in_chunks("invoice/id", values, extra=extra, max_chars=budget)) == expected


def test_in_chunks_cover_all_ids_within_budget() -> None:
    ids = list(range(100000, 103000))
    chunks = list(c.in_chunks("invoice/id", ids, extra=c.eq("closedFlag", True), max_chars=1500))
    assert len(chunks) > 1
    assert all(c.encoded_len(ch) <= 1500 for ch in chunks)
    seen: list[int] = []
    for ch in chunks:
        assert ch.endswith("(closedFlag=true)")
        inside = ch.split(" in (", 1)[1].split(")", 1)[0]
        seen.extend(int(x) for x in inside.split(", "))
    assert seen == ids


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_string_literal_round_trips_reference(text: str) -> None:
    assert reference_string(c.literal(text)) == text


@pytest.mark.skipif(simparser is None, reason="sandbox conditions parser not present")
@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",))))
def test_string_literal_round_trips_simulator_parser(text: str) -> None:
    # hostile text (quotes, backslashes, "or 1=1", parentheses) stays one literal for the real grammar
    assert parsed_value(c.eq("company/name", text)) == text
    node = simparser.parse(c.in_("company/name", [text, "x"]))
    assert node.value == (text, "x")
