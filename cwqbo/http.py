"""The one place cwqbo builds HTTP clients and decides what a failed request is worth.

`set_transport_override(transport)` makes every client built afterwards in this process use that transport
(for example `Sandbox.transport()`, an in-process `httpx.MockTransport`), with no sockets.

The retry policy below is shared by the ConnectWise client, the QuickBooks client and the QuickBooks token
endpoint, so both services are retried, waited on and logged the same way:

* `is_retriable` — one classifier: a status (or a transport exception) plus "is this request idempotent?"
  gives retry-or-fatal. A request that cannot have reached the server (connect error, connect or pool timeout)
  is always safe to repeat; 429 is too (the server refused before doing anything); any other transport error
  and 500/502/503/504 only when repeating the request cannot apply it twice (a GET, or a QBO write carrying
  its `requestid`).
* `parse_retry_after` — the `Retry-After` header, in seconds or HTTP-date form, capped.
* `RetryPolicy.call` — the attempt loop. stamina drives it (attempt counting, its test mode and on/off
  switch); the waits (exponential backoff with jitter, stamina's formula, or the server's Retry-After) go
  through the injected `cwqbo.clock.Clock`, so tests (`ManualClock`) and benchmarks (`ScaledClock`) never
  really sleep. Every scheduled retry is logged at INFO on the `cwqbo.http` logger: the log file always,
  the terminal only with `-v`. stamina's own instrumentation is switched off, so a quiet run (cron) prints
  nothing when it retries.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx

from cwqbo import __version__
from cwqbo.clock import Clock
from cwqbo.errors import AuthError, CwqboError, PermissionDenied, RemoteError

USER_AGENT = f"cwqbo/{__version__} (+https://github.com/cwqbo/cwqbo)"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0  # never honour a Retry-After longer than this (seconds)
# Transport failures that happen before the request left this machine: nothing can have been committed.
NEVER_SENT: tuple[type[httpx.TransportError], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)

log = logging.getLogger("cwqbo.http")

T = TypeVar("T")

_override: httpx.BaseTransport | None = None


def set_transport_override(transport: httpx.BaseTransport | None) -> None:
    """Route every client built from now on through `transport` (None restores real networking)."""
    global _override
    _override = transport


class _NoCookies(httpx.Cookies):
    """A jar that keeps nothing: neither API authenticates or pages by cookie (ConnectWise takes Basic auth,
    QBO a bearer token), and httpx otherwise parses every response's Set-Cookie through http.cookiejar, a few
    per cent of a sync's CPU."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class _Client(httpx.Client):
    """httpx.Client that neither stores nor sends cookies (see `_NoCookies`), and parses each URL once."""

    def build_request(self, method: str, url: httpx.URL | str, *, params: Any = None,
                      **kwargs: Any) -> httpx.Request:
        """The request httpx builds, but with `params` joined to the URL text before it is parsed: httpx would
        parse (and check character by character) the URL, then the whole of it again to add the query, which is
        long for a ConnectWise `conditions` list of a page's ids. The query text is httpx's own (`QueryParams`)."""
        if params and isinstance(url, str) and "?" not in url and "#" not in url:
            url, params = httpx.URL(f"{url}?{httpx.QueryParams(params)}"), None
        return super().build_request(method, url, params=params, **kwargs)

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, value: Any) -> None:
        if value:
            raise ValueError("cwqbo's HTTP clients keep no cookies")


_NO_COOKIES = _NoCookies()


def new_client(*, base_url: str = "", auth: httpx.Auth | tuple[str, str] | None = None,
               headers: dict[str, str] | None = None, timeout: httpx.Timeout | float | None = None,
               transport: httpx.BaseTransport | None = None, **kwargs: Any) -> httpx.Client:
    """An httpx.Client with our User-Agent and timeouts, keeping no cookies; the process-wide override wins over
    `transport`."""
    merged = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    merged.update(headers or {})
    return _Client(base_url=base_url, auth=auth, headers=merged,
                   timeout=timeout if timeout is not None else DEFAULT_TIMEOUT,
                   transport=_override or transport, follow_redirects=False, **kwargs)


# -- classification ---------------------------------------------------------------------------------------


def never_sent(exc: httpx.TransportError) -> bool:
    """True when the request cannot have reached the server, so it cannot have changed anything there."""
    return isinstance(exc, NEVER_SENT)


def is_retriable(outcome: int | httpx.TransportError, *, idempotent: bool) -> bool:
    """Whether another attempt is worth it: `outcome` is a response status or the transport exception.

    `idempotent`: repeating the request cannot apply it twice (a read, or a write with an idempotency key).
    """
    if isinstance(outcome, httpx.TransportError):
        if isinstance(outcome, httpx.UnsupportedProtocol):  # a bad URL: another attempt fails the same way
            return False
        return idempotent or never_sent(outcome)
    if outcome == 429:
        return True  # refused before anything was done: safe even for a write
    return idempotent and outcome in RETRY_STATUSES


def error_class(status: int) -> type[CwqboError]:
    """What a final (not retried) HTTP error becomes, the same for both services: 401 → AuthError,
    403 → PermissionDenied, anything else (5xx included) → RemoteError."""
    if status == 401:
        return AuthError
    if status == 403:
        return PermissionDenied
    return RemoteError


def parse_retry_after(value: str | None, now: float, *, cap: float = MAX_RETRY_AFTER) -> float | None:
    """`Retry-After` in seconds from `now` (epoch seconds, from the injected clock), at most `cap`.

    Both forms of RFC 9110: delay-seconds (`120`) and an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`);
    None when absent or unreadable (the caller then uses its own backoff).
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), cap)


class Retriable(Exception):
    """An attempt failed in a way worth another. Raised inside `RetryPolicy.call`, never out of it.

    `retry_after` (seconds) replaces the backoff when the server said how long to wait; `response` is the
    failed response, if any (so the caller can describe the last failure when it gives up).
    """

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None,
                 response: httpx.Response | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        self.response = response
        self.attempts = 0  # set when the policy gives up: how many attempts were made

    @property
    def throttled(self) -> bool:
        return self.status == 429


def response_failure(response: httpx.Response, *, idempotent: bool, now: float) -> Retriable | None:
    """A `Retriable` for a response worth another attempt (with its Retry-After), else None."""
    status = response.status_code
    if not is_retriable(status, idempotent=idempotent):
        return None
    return Retriable(f"HTTP {status}", status=status, response=response,
                     retry_after=parse_retry_after(response.headers.get("Retry-After"), now))


def transport_failure(exc: httpx.TransportError, *, idempotent: bool, reason: str | None = None) -> Retriable | None:
    """A `Retriable` for a transport error worth another attempt, else None (the caller raises its own error)."""
    if not is_retriable(exc, idempotent=idempotent):
        return None
    return Retriable(reason or type(exc).__name__)


# -- the attempt loop -------------------------------------------------------------------------------------


def quiet_stamina() -> None:
    """Switch off stamina's default instrumentation (done before our first retrying call).

    It logs `stamina.retry_scheduled` at WARNING on the "stamina" logger, which Python's last-resort handler
    prints to stderr, and cron mails stderr to the user. Our own retry lines go to the `cwqbo` logger instead.
    stamina is imported here, not at the top: with tenacity it costs ~0.1 s that `cwqbo --help` should not pay.
    """
    global _stamina_quiet
    if _stamina_quiet:
        return
    import stamina.instrumentation

    stamina.instrumentation.set_on_retry_hooks(())
    logging.getLogger("stamina").addHandler(logging.NullHandler())  # should anything turn them back on
    _stamina_quiet = True


_stamina_quiet = False


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    Failures (transport errors, 5xx) get `attempts` tries in all. 429s do not use those up: a throttled call
    keeps waiting while the waits add up to at most `throttle_budget` seconds (and at most `max_throttled`
    429s). Waits: the server's Retry-After when it sends one (capped at `max_retry_after`), else stamina's
    backoff `min(wait_max, wait_initial * wait_exp_base ** (n - 1) + uniform(0, wait_jitter))` for the
    n-th retry of that kind.
    """

    attempts: int = 6
    throttle_budget: float = 600.0
    max_throttled: int = 30
    wait_initial: float = 0.25
    wait_max: float = 30.0
    wait_jitter: float = 0.25
    wait_exp_base: float = 2.0
    max_retry_after: float = MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.max_throttled < 0 or self.throttle_budget < 0:
            raise ValueError("attempts must be >= 1, max_throttled and throttle_budget >= 0")
        if min(self.wait_initial, self.wait_max, self.wait_jitter, self.max_retry_after) < 0 or self.wait_exp_base < 1:
            raise ValueError("waits must be >= 0 and wait_exp_base >= 1")

    def backoff(self, retry: int) -> float:
        """Seconds to wait before retry number `retry` (1-based), jitter included."""
        try:
            base = self.wait_initial * self.wait_exp_base ** (retry - 1)
        except OverflowError:
            return self.wait_max
        jitter = random.uniform(0, self.wait_jitter) if self.wait_jitter else 0.0  # noqa: S311 - not crypto
        return min(self.wait_max, base + jitter)

    def call(self, attempt: Callable[[], T], *, clock: Clock, label: str,
             give_up: Callable[[Retriable], Exception],
             on_retry: Callable[[Retriable, float], None] | None = None) -> T:
        """Run `attempt` until it returns, raises something other than `Retriable`, or the budget is spent.

        `give_up(last)` builds the error raised when the retries run out (`last.attempts` says how many were
        made); `on_retry(failure, wait)` runs before each wait (the QBO client holds its throttle with it).
        `label` names the request in the log ("ConnectWise GET /finance/invoices").
        """
        import stamina

        quiet_stamina()
        state = _Tries(self)
        try:
            for stamina_attempt in stamina.retry_context(
                    on=state.decide, attempts=self.attempts + self.max_throttled, timeout=None,
                    wait_initial=0.0, wait_max=0.0, wait_jitter=0.0):  # stamina never sleeps: we do, on `clock`
                with stamina_attempt:
                    if state.pending is not None:
                        failure, wait = state.pending
                        state.pending = None
                        log.info("%s: %s; retrying in %.1fs (attempt %d)", label,
                                 "throttled (HTTP 429)" if failure.throttled else failure.reason, wait, state.tries + 1)
                        if on_retry is not None:
                            on_retry(failure, wait)
                        if not stamina.is_testing():  # stamina's test mode: no backoff, like its own waits
                            clock.sleep(wait)
                    state.tries += 1
                    return attempt()
        except Retriable as last:
            last.attempts = state.tries
            log.info("%s: giving up after %d attempt(s): %s", label, state.tries, last.reason)
            raise give_up(last) from last
        raise AssertionError("unreachable")  # pragma: no cover - stamina either returns or raises


class _Tries:
    """One call's retry budget; `decide` is stamina's `on` hook (retry or not), `pending` the next wait."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.tries = 0
        self.failures = 0
        self.throttled = 0
        self.throttle_waited = 0.0
        self.pending: tuple[Retriable, float] | None = None

    def decide(self, exc: Exception) -> bool:
        p = self.policy
        if not isinstance(exc, Retriable):
            return False
        if exc.throttled:
            self.throttled += 1
            wait = min(exc.retry_after, p.max_retry_after) if exc.retry_after is not None else p.backoff(self.throttled)
            if self.throttled > p.max_throttled or self.throttle_waited + wait > p.throttle_budget:
                return False
            self.throttle_waited += wait
        else:
            self.failures += 1
            if self.failures >= p.attempts:
                return False
            wait = min(exc.retry_after, p.max_retry_after) if exc.retry_after is not None else p.backoff(self.failures)
        self.pending = (exc, wait)
        return True


RETRY_POLICY = RetryPolicy()
