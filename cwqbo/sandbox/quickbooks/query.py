"""The QBO query language: a parser and an evaluator over plain dicts.

Grammar (Intuit "data queries" page):
  SELECT * | count(*) | field[, field…] FROM Entity
  [WHERE cond AND cond …] [ORDERBY field [ASC|DESC][, …]] [STARTPOSITION n] [MAXRESULTS n]
  cond := field (= | < | > | <= | >= | != | LIKE) value | field IN (value, …)
Keywords are case-insensitive; entity names are not. OR is not supported. Strings use single quotes
with `\\'` as the escape for a quote. A reference field (`CustomerRef`) compares by its `value`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from cwqbo.sandbox.instants import instant

DEFAULT_MAX_RESULTS = 100
MAX_RESULTS_LIMIT = 1000


class QueryError(ValueError):
    """A statement QBO would refuse; `code` is the QBO error code (4000 parse, 4001 validation)."""

    def __init__(self, detail: str, code: str = "4000") -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code


@dataclass(frozen=True)
class Condition:
    field: str
    op: str  # "=", "!=", "<", ">", "<=", ">=", "LIKE", "IN"
    values: tuple[Any, ...]


@dataclass
class Query:
    entity: str
    select: str = "*"  # "*", "count", or "fields"
    fields: list[str] = field(default_factory=list)
    where: list[Condition] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS

    def mentions(self, name: str) -> bool:
        return any(c.field.split(".")[0].lower() == name.lower() for c in self.where)


_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<str>'(?:\\.|[^'\\])*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)

_KEYWORDS = {"select", "from", "where", "and", "or", "in", "like", "orderby", "order", "by", "asc", "desc",
             "startposition", "maxresults", "count", "true", "false", "iterator"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            raise QueryError(f'QueryParserError: Invalid content. Lexical error at line 1, column {pos + 1}.  Encountered: "{bad}"')
        kind = m.lastgroup or ""
        toks.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return toks


def _unquote(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s[1:-1])


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def _peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _fail(self, tok: _Tok | None) -> QueryError:
        if tok is None:
            return QueryError('QueryParserError: Encountered "<EOF>" at line 1.')
        return QueryError(f'QueryParserError: Encountered " <{tok.kind.upper()}> "{tok.text} "" at line 1, column {tok.pos + 1}.')

    def _kw(self, *words: str) -> str | None:
        tok = self._peek()
        if tok and tok.kind == "word" and tok.text.lower() in words:
            self.i += 1
            return tok.text.lower()
        return None

    def _expect_kw(self, word: str) -> None:
        if not self._kw(word):
            raise self._fail(self._peek())

    def _punct(self, ch: str) -> bool:
        tok = self._peek()
        if tok and tok.kind == "punct" and tok.text == ch:
            self.i += 1
            return True
        return False

    def _ident(self) -> str:
        tok = self._peek()
        if not tok or tok.kind != "word" or tok.text.lower() in _KEYWORDS:
            raise self._fail(tok)
        self.i += 1
        return tok.text

    def _int(self) -> int:
        tok = self._peek()
        if not tok or tok.kind != "num" or "." in tok.text or tok.text.startswith("-"):
            raise self._fail(tok)
        self.i += 1
        return int(tok.text)

    def _value(self) -> Any:
        tok = self._peek()
        if tok is None:
            raise self._fail(tok)
        if tok.kind == "str":
            self.i += 1
            return _unquote(tok.text)
        if tok.kind == "num":
            self.i += 1
            return Decimal(tok.text)
        if tok.kind == "word" and tok.text.lower() in ("true", "false"):
            self.i += 1
            return tok.text.lower() == "true"
        raise self._fail(tok)

    def parse(self) -> Query:
        self._expect_kw("select")
        q = Query(entity="")
        if self._punct("*"):
            q.select = "*"
        elif self._kw("count"):
            if not (self._punct("(") and self._punct("*") and self._punct(")")):
                raise self._fail(self._peek())
            q.select = "count"
        else:
            q.select = "fields"
            q.fields.append(self._ident())
            while self._punct(","):
                if self._punct("*"):
                    continue  # python-quickbooks sends `SELECT *, Sku FROM Item`
                q.fields.append(self._ident())
        if q.select == "*" and self._punct(","):
            q.fields.append(self._ident())
            while self._punct(","):
                q.fields.append(self._ident())
        self._expect_kw("from")
        q.entity = self._ident()
        if self._kw("where"):
            q.where.append(self._condition())
            while True:
                if self._kw("and"):
                    q.where.append(self._condition())
                elif (tok := self._peek()) and tok.kind == "word" and tok.text.lower() == "or":
                    raise QueryError(f'QueryParserError: Encountered " <OR> "{tok.text} "" at line 1, column {tok.pos + 1}. OR is not supported.')
                else:
                    break
        if self._kw("orderby") or (self._kw("order") and (self._kw("by") or self._raise())):
            while True:
                name = self._ident()
                desc = self._kw("asc", "desc") == "desc"
                q.order_by.append((name, desc))
                if not self._punct(","):
                    break
        while True:
            if self._kw("startposition"):
                q.start_position = max(1, self._int())
            elif self._kw("maxresults"):
                q.max_results = min(self._int(), MAX_RESULTS_LIMIT)
            else:
                break
        if self._peek() is not None:
            raise self._fail(self._peek())
        return q

    def _raise(self) -> bool:
        raise self._fail(self._peek())

    def _condition(self) -> Condition:
        name = self._ident()
        tok = self._peek()
        if tok and tok.kind == "op":
            self.i += 1
            op = "!=" if tok.text == "<>" else tok.text
            return Condition(name, op, (self._value(),))
        if self._kw("like"):
            value = self._value()
            if not isinstance(value, str):
                raise self._fail(self.toks[self.i - 1])
            return Condition(name, "LIKE", (value,))
        if self._kw("in"):
            if not self._punct("("):
                raise self._fail(self._peek())
            values = [self._value()]
            while self._punct(","):
                values.append(self._value())
            if not self._punct(")"):
                raise self._fail(self._peek())
            return Condition(name, "IN", tuple(values))
        raise self._fail(tok)


def parse(text: str) -> Query:
    """Parse one statement; raises QueryError (code 4000) on anything QBO's parser would reject."""
    if not text or not text.strip():
        raise QueryError('QueryParserError: Encountered "<EOF>" at line 1, column 1.')
    return _Parser(text.strip()).parse()


# --- evaluation -------------------------------------------------------------------------------------


def _lookup(obj: dict[str, Any], path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        key = next((k for k in cur if k.lower() == part.lower()), None)
        if key is None:
            return None
        cur = cur[key]
    if isinstance(cur, dict) and "value" in cur:  # a ReferenceType filters by its id
        cur = cur["value"]
    return cur


def _as_bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).lower() == "true"


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _instant(value: Any) -> dt.datetime | None:
    """A dateTime (MetaData.LastUpdatedTime) as an instant, so '…-08:00' and '…Z' compare as times, not text."""
    return instant(value) if isinstance(value, str) and _DATETIME.match(value) else None


def _coerce(stored: Any, literal: Any) -> tuple[Any, Any]:
    """Bring a stored value and a query literal to comparable types (QBO compares '300.00' numerically)."""
    if isinstance(stored, bool) or isinstance(literal, bool):
        return _as_bool(stored), _as_bool(literal)
    stored_at, literal_at = _instant(stored), _instant(literal)
    if stored_at is not None and literal_at is not None:
        return stored_at, literal_at
    if isinstance(stored, (int, Decimal)):
        try:
            return Decimal(stored), Decimal(str(literal))
        except InvalidOperation:
            return str(stored), str(literal)
    return str(stored).lower(), str(literal).lower()


def _like(stored: Any, pattern: str) -> bool:
    regex = "^" + ".*".join(re.escape(part) for part in pattern.lower().split("%")) + "$"
    return re.match(regex, str(stored).lower(), re.DOTALL) is not None


def matches(obj: dict[str, Any], cond: Condition) -> bool:
    stored = _lookup(obj, cond.field)
    if stored is None:
        return False
    if cond.op == "LIKE":
        return _like(stored, cond.values[0])
    if cond.op == "IN":
        return any(a == b for a, b in (_coerce(stored, v) for v in cond.values))
    a, b = _coerce(stored, cond.values[0])
    try:
        return bool({"=": a == b, "!=": a != b, "<": a < b, ">": a > b, "<=": a <= b, ">=": a >= b}[cond.op])
    except TypeError:
        return False


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, Decimal)):
        return (2, Decimal(value))
    at = _instant(value)
    if at is not None:
        return (4, at)
    return (3, str(value).lower())


def _by_field(name: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    """The sort key ORDERBY `name` uses for a row."""
    return lambda row: _sort_key(_lookup(row, name))


def execute(query: Query, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Filter, order and page `rows`; returns (page, total matching)."""
    hits = [r for r in rows if all(matches(r, c) for c in query.where)]
    if query.order_by:
        for name, desc in reversed(query.order_by):
            hits.sort(key=_by_field(name), reverse=desc)
    else:
        hits.sort(key=lambda r: _sort_key(_id_number(r.get("Id"))))
    total = len(hits)
    start = query.start_position - 1
    page = hits[start : start + max(query.max_results, 0)]
    if query.select == "fields" or query.fields:
        if query.select == "fields":
            page = [_project(r, query.fields) for r in page]
    return page, total


def _id_number(value: Any) -> Any:
    try:
        return Decimal(str(value))
    except (InvalidOperation, TypeError):
        return value


def _project(obj: dict[str, Any], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        key = next((k for k in obj if k.lower() == name.lower()), None)
        if key is not None:
            out[key] = obj[key]
    out["domain"] = obj.get("domain", "QBO")
    out["sparse"] = True
    return out
