"""Client-side throttle for QBO's per-realm limits (500 requests/min, 40 batch/min, 10 in flight).

Staying just under the limits is cheaper than eating 429s: each throttled request costs a round trip
and Intuit may escalate. The batch budget is the bottleneck of every large sync, so it is kept by time, not by a
count headroom (38 a minute would give away 5 % of the throughput). Intuit counts a call when it arrives, somewhere
between our send and its answer; a batch call is therefore counted until its answer came back or until a second
(the margin) after it was sent, whichever is sooner. Both bound its arrival, so no 41st call can land inside one of
Intuit's minutes, and a call answered in 0.2 s costs 60.2 s of the window rather than 61 (99.7 % of the budget,
not 98.4 %).

When a 429 comes anyway, the client's retry policy (`cwqbo.http`) picks the wait (Retry-After, or its backoff
with jitter) and `on_429` holds every request of the realm for it, not only the one that was refused. Time comes
from a `Clock`, so tests (ManualClock) and benchmarks (ScaledClock) run a minute of traffic without really
waiting.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from cwqbo.clock import Clock
from cwqbo.http import MAX_RETRY_AFTER

WINDOW = 60.0
BATCH_MARGIN = 1.0  # seconds after its send by which a batch call has surely reached Intuit


class Throttle:
    """A thread-safe sliding-window limiter; `with throttle.slot(batch=...)` waits for a free slot."""

    def __init__(self, clock: Clock | None = None, per_minute: int = 500, batch_per_minute: int = 40,
                 concurrency: int = 10, headroom: float = 0.95, batch_margin: float = BATCH_MARGIN) -> None:
        if per_minute < 1 or batch_per_minute < 1 or concurrency < 1 or not 0 < headroom <= 1 or batch_margin < 0:
            raise ValueError("throttle limits must be positive, headroom in (0, 1] and the batch margin >= 0")
        self.clock = clock or Clock()
        self.per_minute = max(1, int(per_minute * headroom))
        self.batch_per_minute = batch_per_minute
        self.batch_margin = batch_margin
        self.batch_window = WINDOW + batch_margin  # the longest a batch call can hold its place in the window
        self.concurrency = concurrency
        self._cond = threading.Condition()
        self._requests: deque[float] = deque()
        # Each batch call's latest possible arrival at Intuit: its send + the margin, lowered to the time of its
        # answer when that comes sooner (answers come back out of order, so this is kept unsorted).
        self._batches: list[list[float]] = []
        self._in_flight = 0
        self._blocked_until = 0.0
        self.waited = 0.0  # total clock-seconds spent waiting (for the benchmark report)
        self.throttled = 0  # 429s reported

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def _prune(self, now: float) -> None:
        while self._requests and self._requests[0] <= now - WINDOW:
            self._requests.popleft()
        self._batches = [arrival for arrival in self._batches if arrival[0] > now - WINDOW]

    def _wait_needed(self, now: float, batch: bool) -> float:
        """Seconds until a request may start (0 = now); concurrency is handled separately."""
        waits = [self._blocked_until - now]
        if len(self._requests) >= self.per_minute:
            waits.append(self._requests[len(self._requests) - self.per_minute] + WINDOW - now)
        if batch and len(self._batches) >= self.batch_per_minute:
            arrivals = sorted(arrival[0] for arrival in self._batches)
            waits.append(arrivals[len(arrivals) - self.batch_per_minute] + WINDOW - now)
        return max(0.0, *waits)

    def acquire(self, batch: bool = False) -> list[float] | None:
        """Block until the request may be sent, then count it; a batch call's latest arrival is returned, for
        `release` to lower to the time its answer came."""
        while True:
            with self._cond:
                while self._in_flight >= self.concurrency:
                    self._cond.wait(0.05)
                now = self.clock.monotonic()
                self._prune(now)
                wait = self._wait_needed(now, batch)
                if wait <= 0:
                    self._requests.append(now)
                    arrival = [now + self.batch_margin] if batch else None
                    if arrival is not None:
                        self._batches.append(arrival)
                    self._in_flight += 1
                    return arrival
            # Sleep outside the lock so other threads can finish and release their slots.
            self.waited += wait
            self.clock.sleep(wait + 0.001)

    def free_within(self, seconds: float) -> int:
        """How many single requests could start within `seconds` from now without waiting for the request window
        (requests already counted leave it as it slides); concurrency and a 429 hold are not counted."""
        with self._cond:
            horizon = self.clock.monotonic() + max(0.0, seconds) - WINDOW
            still = sum(1 for stamp in self._requests if stamp > horizon)
            return max(0, self.per_minute - still)

    def batch_slots_free(self) -> int:
        """How many batch calls could start now without waiting for the batch window."""
        with self._cond:
            now = self.clock.monotonic()
            self._prune(now)
            return max(0, self.batch_per_minute - len(self._batches))

    def release(self, arrival: list[float] | None = None) -> None:
        """The request is over (answered, or failed): a batch call it arrived by now at the latest."""
        with self._cond:
            if arrival is not None:
                arrival[0] = min(arrival[0], self.clock.monotonic())
            self._in_flight = max(0, self._in_flight - 1)
            self._cond.notify()

    @contextmanager
    def slot(self, batch: bool = False) -> Iterator[None]:
        arrival = self.acquire(batch)
        try:
            yield
        finally:
            self.release(arrival)

    def on_429(self, hold: float) -> float:
        """The server throttled us: hold every request for `hold` seconds (at most MAX_RETRY_AFTER).

        A hold already running longer is kept (requests in flight when the first 429 came don't shorten it).
        Returns the seconds from now until requests may start again.
        """
        with self._cond:
            self.throttled += 1
            now = self.clock.monotonic()
            self._blocked_until = max(self._blocked_until, now + min(max(hold, 0.0), MAX_RETRY_AFTER))
            return self._blocked_until - now
