"""HTTP responses shaped like the recorded Intuit ones: headers (intuit_tid, Qbo-Version), JSON and HTML bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from cwqbo import money

# The recorded faults (400 and 401) are served as plain "application/json", successes with ";charset=utf-8".
_FAULT_CONTENT_TYPE = "application/json"


def _api_headers(tid: str, content_type: str = "application/json;charset=utf-8") -> dict[str, str]:
    return {"Content-Type": content_type, "intuit_tid": tid, "Intuit-Tid": tid, "Qbo-Version": "1944.190"}


def _response(status: int, body: Any, tid: str, *, content_type: str = "application/json;charset=utf-8",
              extra: dict[str, str] | None = None) -> httpx.Response:
    headers = _api_headers(tid, content_type)
    headers.update(extra or {})
    return httpx.Response(status, content=money.dumps(body).encode("utf-8"), headers=headers)


def _html(status: int, message: str, tid: str) -> httpx.Response:
    page = f"<html><head><title>Error</title></head><body><h1>Error</h1><p>{message}</p></body></html>"
    return httpx.Response(status, content=page.encode(), headers={"Content-Type": "text/html", "intuit_tid": tid})


Handler = Callable[[httpx.Request], httpx.Response]
