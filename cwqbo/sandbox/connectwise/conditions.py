"""The ConnectWise `conditions` query language: tokenizer, recursive-descent parser, evaluator.

The simulator must reject what the real API rejects and treat quoted text strictly as a literal, so
that a client which forgets to escape user text fails in tests instead of in production.

Grammar (keywords case-insensitive):
    expr       := and_expr ("or" and_expr)*
    and_expr   := unary ("and" unary)*
    unary      := "(" expr ")" | comparison
    comparison := field op value | field ["not"] "in" "(" value ("," value)* ")"
    op         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "contains" | "like" | "not like" | "not contains"
    field      := name ("/" name)*
    value      := "string" | [date] | number | true | false | null
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Union

__all__ = ["ConditionError", "parse", "matches", "compile_conditions", "compile_node", "error_body", "lookup",
           "rewrite_fields", "index_hint"]


class ConditionError(ValueError):
    """Invalid `conditions` syntax; `position` is the 0-based character offset."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.position = position


def error_body(exc: ConditionError, param: str = "conditions") -> dict[str, Any]:
    """The 400 body the real API sends for a condition it cannot parse."""
    message = f"Invalid {param}: {exc} (at position {exc.position})"
    return {"code": "InvalidObject", "message": message,
            "errors": [{"code": "InvalidCondition", "message": message, "resource": param, "field": param}]}


# --- tokens ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # NAME, STRING, NUMBER, DATE, OP, LPAREN, RPAREN, COMMA, SLASH, END
    value: Any
    pos: int


_OPS = ("<=", ">=", "!=", "=", "<", ">")
_PUNCTUATION = {"(": "LPAREN", ")": "RPAREN", ",": "COMMA", "/": "SLASH"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == '"':
            start, i, buf = i, i + 1, []
            while True:
                if i >= n:
                    raise ConditionError("unterminated string literal", start)
                ch = text[i]
                if ch == "\\":
                    if i + 1 >= n:
                        raise ConditionError("unterminated escape in string literal", i)
                    nxt = text[i + 1]
                    if nxt not in ('"', "\\"):
                        raise ConditionError(f"invalid escape \\{nxt} in string literal", i)
                    buf.append(nxt)
                    i += 2
                elif ch == '"':
                    i += 1
                    break
                else:
                    buf.append(ch)
                    i += 1
            tokens.append(Token("STRING", "".join(buf), start))
        elif c == "[":
            end = text.find("]", i)
            if end < 0:
                raise ConditionError("unterminated date literal", i)
            tokens.append(Token("DATE", _parse_date(text[i + 1:end], i), i))
            i = end + 1
        elif c in _PUNCTUATION:
            tokens.append(Token(_PUNCTUATION[c], c, i))
            i += 1
        elif c in "<>=!":
            for op in _OPS:
                if text.startswith(op, i):
                    tokens.append(Token("OP", op, i))
                    i += len(op)
                    break
            else:
                raise ConditionError(f"unexpected character {c!r}", i)
        elif c.isdigit() or (c == "-" and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            assert m is not None
            tokens.append(Token("NUMBER", Decimal(m.group(0)), i))
            i = m.end()
        elif c.isalpha() or c == "_":
            m = _NAME.match(text, i)
            assert m is not None
            tokens.append(Token("NAME", m.group(0), i))
            i = m.end()
        else:
            raise ConditionError(f"unexpected character {c!r}", i)
    tokens.append(Token("END", None, n))
    return tokens


def _parse_date(raw: str, pos: int) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConditionError(f"invalid date [{raw}]", pos) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


# --- AST ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Compare:
    field: tuple[str, ...]
    op: str  # = != < <= > >= contains notcontains like notlike in notin
    value: Any  # a literal, or a tuple of literals for in/notin


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    parts: tuple["Node", ...]


Node = Union[Compare, BoolOp]


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "NAME" and tok.value.lower() == word

    def expect(self, kind: str, what: str) -> Token:
        tok = self.next()
        if tok.kind != kind:
            raise ConditionError(f"expected {what}, found {_describe(tok)}", tok.pos)
        return tok

    def parse(self) -> Node:
        if self.peek().kind == "END":
            raise ConditionError("empty condition", 0)
        node = self.expr()
        tok = self.peek()
        if tok.kind != "END":
            raise ConditionError(f"expected 'and', 'or' or end of condition, found {_describe(tok)}", tok.pos)
        return node

    def expr(self) -> Node:
        return self._chain("or", self.and_expr)

    def and_expr(self) -> Node:
        return self._chain("and", self.unary)

    def _chain(self, word: str, operand: Callable[[], Node]) -> Node:
        """`operand (word operand)*`: one level of the grammar ("and" binds tighter than "or")."""
        parts = [operand()]
        while self.keyword(word):
            self.next()
            parts.append(operand())
        return parts[0] if len(parts) == 1 else BoolOp(word, tuple(parts))

    def unary(self) -> Node:
        if self.peek().kind == "LPAREN":
            self.next()
            node = self.expr()
            self.expect("RPAREN", "')'")
            return node
        return self.comparison()

    def field(self) -> tuple[str, ...]:
        tok = self.peek()
        if tok.kind != "NAME" or tok.value.lower() in ("and", "or", "not", "in", "like", "contains"):
            raise ConditionError(f"expected a field name, found {_describe(tok)}", tok.pos)
        parts = [self.next().value]
        while self.peek().kind == "SLASH":
            self.next()
            parts.append(self.expect("NAME", "a field name after '/'").value)
        return tuple(parts)

    def comparison(self) -> Compare:
        name = self.field()
        tok = self.next()
        if tok.kind == "OP":
            return Compare(name, tok.value, self.value())
        if tok.kind == "NAME":
            word = tok.value.lower()
            negate = False
            if word == "not":
                negate = True
                nxt = self.next()
                word = nxt.value.lower() if nxt.kind == "NAME" else ""
                if word not in ("in", "like", "contains"):
                    raise ConditionError(f"expected 'in', 'like' or 'contains' after 'not', found {_describe(nxt)}",
                                         nxt.pos)
            if word in ("like", "contains"):
                value = self.value()
                if not isinstance(value, str):
                    raise ConditionError(f"'{word}' needs a quoted string", tok.pos)
                return Compare(name, ("not" if negate else "") + word, value)
            if word == "in":
                self.expect("LPAREN", "'(' after 'in'")
                values = [self.value()]
                while self.peek().kind == "COMMA":
                    self.next()
                    values.append(self.value())
                self.expect("RPAREN", "')' closing the 'in' list")
                return Compare(name, "notin" if negate else "in", tuple(values))
        raise ConditionError(f"expected an operator after {'/'.join(name)}, found {_describe(tok)}", tok.pos)

    def value(self) -> Any:
        tok = self.next()
        if tok.kind in ("STRING", "NUMBER", "DATE"):
            return tok.value
        if tok.kind == "NAME" and tok.value.lower() in ("true", "false"):
            return tok.value.lower() == "true"
        if tok.kind == "NAME" and tok.value.lower() == "null":
            return None
        raise ConditionError(f"expected a value (a \"quoted string\", number, [date], true, false or null), "
                             f"found {_describe(tok)}", tok.pos)


def _describe(tok: Token) -> str:
    if tok.kind == "END":
        return "end of condition"
    if tok.kind == "STRING":
        return "a string"
    return repr(str(tok.value) if tok.kind != "DATE" else "[date]")


def parse(text: str) -> Node:
    """Parse a conditions string; raises ConditionError on bad syntax."""
    return _Parser(text).parse()


# --- evaluation --------------------------------------------------------------------------------------

_MISSING = object()


def lookup(record: Any, path: tuple[str, ...] | list[str]) -> Any:
    """Nested field value (`company/name`), matching names case-insensitively; None if absent."""
    cur = record
    for part in path:
        if not isinstance(cur, dict):
            return None
        if part in cur:
            cur = cur[part]
            continue
        low = part.lower()
        for key, val in cur.items():
            if key.lower() == low:
                cur = val
                break
        else:
            return None
    return cur


def _coerce(actual: Any, literal: Any) -> tuple[Any, Any] | None:
    """Bring a record value and a literal to comparable types (None if they cannot be compared)."""
    if literal is None or actual is None:
        return None
    if isinstance(literal, bool):
        if isinstance(actual, bool):
            return actual, literal
        if isinstance(actual, str) and actual.lower() in ("true", "false"):
            return actual.lower() == "true", literal
        return None
    if isinstance(literal, Decimal):
        if isinstance(actual, bool):
            return None
        try:
            return Decimal(str(actual)), literal
        except InvalidOperation:
            return None
    if isinstance(literal, dt.datetime):
        if isinstance(actual, str):
            try:
                parsed = dt.datetime.fromisoformat(actual.replace("Z", "+00:00"))
            except ValueError:
                return None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)), literal
        return None
    # string literal: compare as text, case-insensitively (SQL Server's default collation)
    if isinstance(actual, (dict, list)):
        return None
    text = str(actual).lower() if not isinstance(actual, bool) else str(actual).lower()
    return text, str(literal).lower()


def _like(pattern: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if ch == "%" else re.escape(ch) for ch in pattern), re.IGNORECASE | re.DOTALL)


def _compare(node: Compare, record: Any) -> bool:
    actual = lookup(record, node.field)
    op = node.op
    if op in ("in", "notin"):
        if actual is None:
            return op == "in" and None in node.value
        hit = _in(actual, node.value)
        return hit if op == "in" else not hit
    if op in ("contains", "notcontains", "like", "notlike"):
        if actual is None or isinstance(actual, (dict, list)):
            return False
        text = str(actual)
        if op.endswith("contains"):
            hit = node.value.lower() in text.lower()
        else:
            hit = _like(node.value).fullmatch(text) is not None
        return not hit if op.startswith("not") else hit
    if op == "=":
        return _equal(actual, node.value)
    if op == "!=":
        if node.value is None:
            return actual is not None
        return actual is not None and not _equal(actual, node.value)
    pair = _coerce(actual, node.value)
    if pair is None:
        return False
    a, b = pair
    try:
        return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])
    except TypeError:
        return False


@functools.lru_cache(maxsize=256)
def _in_sets(values: tuple[Any, ...]) -> tuple[frozenset[Decimal], frozenset[str], tuple[Any, ...]]:
    """Split an `in (...)` list into hashable lookups so long id lists stay fast."""
    numbers = frozenset(v for v in values if isinstance(v, Decimal))
    texts = frozenset(v.lower() for v in values if isinstance(v, str))
    others = tuple(v for v in values if not isinstance(v, (Decimal, str)) and v is not None)
    return numbers, texts, others


def _in(actual: Any, values: tuple[Any, ...]) -> bool:
    numbers, texts, others = _in_sets(values)
    if numbers and not isinstance(actual, bool) and isinstance(actual, (int, Decimal, str)):
        try:
            if Decimal(str(actual)) in numbers:
                return True
        except InvalidOperation:
            pass
    if texts and not isinstance(actual, (dict, list)) and str(actual).lower() in texts:
        return True
    return any(_equal(actual, v) for v in others)


def _equal(actual: Any, literal: Any) -> bool:
    if literal is None:
        return actual is None
    pair = _coerce(actual, literal)
    return pair is not None and pair[0] == pair[1]


def matches(node: Node | None, record: Any) -> bool:
    if node is None:
        return True
    if isinstance(node, Compare):
        return _compare(node, record)
    if node.op == "and":
        return all(matches(p, record) for p in node.parts)
    return any(matches(p, record) for p in node.parts)


def compile_conditions(text: str | None) -> Callable[[Any], bool]:
    """A predicate for `text` (None/blank matches everything); raises ConditionError on bad syntax."""
    if text is None or not text.strip():
        return lambda record: True
    node = parse(text)
    return lambda record: matches(node, record)


def rewrite_fields(node: Node, fn: Callable[[tuple[str, ...]], tuple[str, ...]]) -> Node:
    """The same condition with every field path passed through `fn` (which may raise to refuse a field)."""
    if isinstance(node, Compare):
        return Compare(fn(node.field), node.op, node.value)
    return BoolOp(node.op, tuple(rewrite_fields(p, fn) for p in node.parts))


def index_hint(node: Node | None) -> tuple[tuple[str, ...], tuple[Any, ...]] | None:
    """(field, values) of a top-level `field = v` / `field in (...)` that every match must satisfy, if any."""
    if node is None:
        return None
    if isinstance(node, Compare):
        if node.op == "=" and node.value is not None:
            return node.field, (node.value,)
        if node.op == "in":
            return node.field, tuple(node.value)
        return None
    if node.op == "and":
        for part in node.parts:
            hint = index_hint(part)
            if hint is not None:
                return hint
    return None


def compile_node(node: Node | None) -> Callable[[Any], bool]:
    if node is None:
        return lambda record: True
    return lambda record: matches(node, record)
