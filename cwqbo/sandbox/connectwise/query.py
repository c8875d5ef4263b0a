"""Lists of the simulated ConnectWise API: conditions checked against the schema, index paths, orderBy, fields, paging.

A condition, `orderBy` or `fields=` naming a field the resource's schema (`cw_schema.MODELS`) does not have is
a 400 in ConnectWise's error shape, never a silent empty answer. Top-level `lastUpdated` reads
`_info/lastUpdated`, as ConnectWise's docs use it. Equality and `in (...)` on indexed fields (`id`,
`billingLogId`, `invoice/id`) look records up instead of scanning them all.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

from cwqbo import money
from cwqbo.sandbox.connectwise import conditions as cond
from cwqbo.sandbox.connectwise import schema as cw_schema

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 1000

Index = Callable[[list[Any]], Iterable[dict[str, Any]]]


class CWError(Exception):
    """An API error answered as the real service would (status + JSON body)."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"code": code, "message": message}
        if errors is not None:
            self.body["errors"] = errors


def bad_request(message: str, field_name: str, resource: str, code: str = "InvalidField") -> CWError:
    return CWError(400, "InvalidObject", f"{resource} object is invalid",
                   [{"code": code, "message": message, "resource": resource, "field": field_name}])


def not_found(resource: str, id_: Any) -> CWError:
    return CWError(404, "NotFound", f"{resource} recId {id_} not found")


@dataclass
class Collection:
    """One list route: security area, schema model, all records, and index lookups by field path."""

    area: str
    model: str
    rows: Callable[[], Iterable[dict[str, Any]]]
    index: dict[tuple[str, ...], Index] = field(default_factory=dict)


def schema_path(model: str, path: tuple[str, ...], param: str) -> tuple[str, ...]:
    resolved = cw_schema.resolve_path(model, path)
    if resolved is None:
        name = "/".join(path)
        message = f"Invalid {param}: {model} has no field '{name}'"
        raise CWError(400, "InvalidObject", message,
                      [{"code": "InvalidField", "message": message, "resource": model, "field": name}])
    return resolved


def parse_conditions(model: str, params: dict[str, str]) -> cond.Node | None:
    text = params.get("conditions")
    if text is None or not text.strip():
        return None
    try:
        node = cond.parse(text)
    except cond.ConditionError as exc:
        body = cond.error_body(exc)
        raise CWError(400, body["code"], body["message"], body["errors"]) from None
    return cond.rewrite_fields(node, lambda path: schema_path(model, path, "conditions"))


def select(coll: Collection, params: dict[str, str]) -> list[dict[str, Any]]:
    """The records matching `conditions` (via an index when one applies), in storage order."""
    node = parse_conditions(coll.model, params)
    pred = cond.compile_node(node)
    hint = cond.index_hint(node)
    source: Iterable[dict[str, Any]]
    if hint is not None and hint[0] in coll.index:
        keys = [_int_key(v) for v in hint[1]]
        source = coll.index[hint[0]]([k for k in keys if k is not None])
    else:
        source = coll.rows()
    return [r for r in source if pred(r)]


def _int_key(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def order(model: str, rows: list[dict[str, Any]], params: dict[str, str]) -> list[dict[str, Any]]:
    text = params.get("orderBy") or params.get("orderby")
    if not text:
        return rows
    for part in reversed([p.strip() for p in text.split(",") if p.strip()]):
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise CWError(400, "InvalidObject", f"Invalid orderBy: {text}")
        path = schema_path(model, tuple(words[0].split("/")), "orderBy")
        desc = len(words) == 2 and words[1].lower() == "desc"
        present = [r for r in rows if cond.lookup(r, path) is not None]
        missing = [r for r in rows if cond.lookup(r, path) is None]
        present.sort(key=lambda r: sort_key(cond.lookup(r, path)), reverse=desc)
        rows = (missing + present) if not desc else (present + missing)
    return rows


def check_fields(model: str, params: dict[str, str]) -> None:
    for spec in (f.strip() for f in (params.get("fields") or "").split(",")):
        if spec:
            schema_path(model, tuple(spec.split("/")), "fields")


def count(coll: Collection, params: dict[str, str]) -> httpx.Response:
    return json_response(200, {"count": len(select(coll, params))})


def listing(request: httpx.Request, params: dict[str, str], coll: Collection) -> httpx.Response:
    check_fields(coll.model, params)
    selected = order(coll.model, select(coll, params), params)
    page = int_param(params, "page", 1)
    size = int_param(params, "pageSize", DEFAULT_PAGE_SIZE)
    if page < 1:
        raise CWError(400, "InvalidObject", "page must be greater than 0")
    size = max(1, min(size, MAX_PAGE_SIZE))
    chunk = selected[(page - 1) * size: page * size]
    body = [project(r, params.get("fields")) for r in chunk]
    headers: dict[str, str] = {}
    last = max(1, math.ceil(len(selected) / size))
    links = []
    base = str(request.url.copy_with(query=None))

    def link(p: int, rel: str) -> str:
        # page goes last, as the real API writes it (pyconnectwise parses `page=N>` from each link)
        q = {k: v for k, v in params.items() if k.lower() not in ("page", "pagesize")}
        q["pageSize"] = str(size)
        q["page"] = str(p)
        return f'<{base}?{urlencode(q)}>; rel="{rel}"'

    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if links:
        headers["Link"] = ", ".join(links)
    return json_response(200, body, headers)


def one(params: dict[str, str], coll: Collection, id_: int, resource: str) -> httpx.Response:
    check_fields(coll.model, params)
    lookup = coll.index.get(("id",))
    rows = lookup([id_]) if lookup is not None else (r for r in coll.rows() if r.get("id") == id_)
    for row in rows:
        return json_response(200, project(row, params.get("fields")))
    raise not_found(resource, id_)


def int_param(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        raw = next((v for k, v in params.items() if k.lower() == name.lower()), None)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise CWError(400, "InvalidObject", f"The value '{raw}' is not valid for {name}.") from None


def sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, Decimal)):
        return (0, Decimal(value))
    if isinstance(value, dict):
        return (2, str(value.get("name") or value.get("id") or ""))
    return (1, str(value).lower())


def project(row: dict[str, Any], fields: str | None) -> dict[str, Any]:
    """Keep only the requested `fields` (comma list; `a/b` keeps nested `b` under `a`)."""
    if not fields:
        return copy.deepcopy(row)
    out: dict[str, Any] = {}
    for spec in (f.strip() for f in fields.split(",")):
        if not spec:
            continue
        parts = spec.split("/")
        src: Any = row
        dst = out
        for j, part in enumerate(parts):
            if not isinstance(src, dict):
                break
            key = next((k for k in src if k.lower() == part.lower()), None)
            if key is None:
                break
            if j == len(parts) - 1:
                dst[key] = copy.deepcopy(src[key])
            else:
                if not isinstance(src[key], dict):
                    break
                dst = dst.setdefault(key, {})
                src = src[key]
    return out


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    all_headers = {"Content-Type": "application/json; charset=utf-8"}
    if status == 429:
        all_headers["Retry-After"] = "1"
    all_headers.update(headers or {})
    return httpx.Response(status, content=money.dumps(body).encode("utf-8"), headers=all_headers)
