"""Clocks: real time for users; manual and scaled clocks so tests and benchmarks control time.

Both the simulators (token expiry, rate limits) and the clients (token freshness, client-side
throttling) take a Clock, so a benchmark can run a minute of rate-limited traffic in seconds.
"""

from __future__ import annotations

import threading
import time


class Clock:
    """Wall-clock time in epoch seconds."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock(Clock):
    """Time moves only when told to; sleep() advances it instantly."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self._t = start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def monotonic(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance(seconds)


class ScaledClock(Clock):
    """Simulated time running `scale` times faster than real time (sleep shortens to match).

    Time is counted from `real0`, a `time.monotonic()` reading (default: now). On Linux that is CLOCK_MONOTONIC,
    the same in every process, so two processes given the same scale, start and real0 share one simulated clock.
    """

    def __init__(self, scale: float, start: float | None = None, real0: float | None = None) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self.real0 = time.monotonic() if real0 is None else real0
        self.start = time.time() if start is None else start

    def now(self) -> float:
        return self.start + (time.monotonic() - self.real0) * self.scale

    def monotonic(self) -> float:
        return self.now()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)
