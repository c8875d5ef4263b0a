"""The one place cwqbo builds HTTP clients, so tests and the demo can route every request to a simulator.

`set_transport_override(transport)` makes every client built afterwards in this process use that transport
(for example `Sandbox.transport()`, an in-process `httpx.MockTransport`), with no sockets.
"""

from __future__ import annotations

from typing import Any

import httpx

from cwqbo import __version__

USER_AGENT = f"cwqbo/{__version__} (+https://github.com/cwqbo/cwqbo)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

_override: httpx.BaseTransport | None = None


def set_transport_override(transport: httpx.BaseTransport | None) -> None:
    """Route every client built from now on through `transport` (None restores real networking)."""
    global _override
    _override = transport


def new_client(*, base_url: str = "", auth: httpx.Auth | tuple[str, str] | None = None,
               headers: dict[str, str] | None = None, timeout: httpx.Timeout | float | None = None,
               transport: httpx.BaseTransport | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx.Client with our User-Agent and timeouts; the process-wide override wins over `transport`."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    merged.update(headers or {})
    return httpx.Client(base_url=base_url, auth=auth, headers=merged,
                        timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
                        transport=_override or transport, follow_redirects=False, **kwargs)
