"""The client-side QBO throttle: sliding windows, batch window, concurrency cap, 429 backoff."""

from __future__ import annotations

import threading
import time

import pytest

from cwqbo.clock import ManualClock, ScaledClock
from cwqbo.quickbooks.throttle import Throttle


def starts(throttle: Throttle, clock: ManualClock, n: int, batch: bool = False) -> list[float]:
    out = []
    for _ in range(n):
        with throttle.slot(batch=batch):
            out.append(clock.now())
    return out


def test_stays_under_the_per_minute_limit_with_headroom() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock, per_minute=500, headroom=0.95)
    times = starts(throttle, clock, 1000)
    assert times[474] == 0.0 and times[475] >= 60.0  # 475 = 95 % of 500 fit in the first minute
    for i in range(len(times)):  # no 60-second window ever holds more than 475
        j = i
        while j < len(times) and times[j] < times[i] + 60:
            j += 1
        assert j - i <= 475


def test_batch_window_is_separate_and_tighter() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock, batch_per_minute=40)
    batches = starts(throttle, clock, 39, batch=True)
    assert batches[-1] >= 60.0 and batches[37] == 0.0  # 38 batches per minute
    assert starts(throttle, clock, 1)[0] == clock.now()  # ordinary requests are not held by the batch window


def test_on_429_holds_every_request_for_retry_after() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock)
    assert throttle.on_429(12) == 12
    assert starts(throttle, clock, 1)[0] >= 12.0


def test_on_429_without_retry_after_backs_off_exponentially_and_resets() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock)

    def strike() -> float:
        held = throttle.on_429()
        clock.advance(held + 0.01)  # the next 429 comes after the hold
        return held

    assert [strike() for _ in range(4)] == [1, 2, 4, 8]
    throttle.on_success()
    assert strike() == 1
    for _ in range(20):
        strike()
    assert strike() == 60


def test_concurrency_cap_with_threads() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock, concurrency=3)
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal peak
        for _ in range(5):
            with throttle.slot():
                with lock:
                    peak = max(peak, throttle.in_flight)
                time.sleep(0.002)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3 and throttle.in_flight == 0


def test_slot_is_released_when_the_request_raises() -> None:
    throttle = Throttle(ManualClock(0.0), concurrency=1)
    with pytest.raises(RuntimeError):
        with throttle.slot():
            raise RuntimeError("boom")
    assert throttle.in_flight == 0
    with throttle.slot():
        assert throttle.in_flight == 1


def test_scaled_clock_runs_a_throttled_minute_fast() -> None:
    clock = ScaledClock(6000.0)
    throttle = Throttle(clock, per_minute=10, headroom=1.0)
    real = time.monotonic()
    t0 = clock.now()
    for _ in range(11):
        with throttle.slot():
            pass
    assert clock.now() - t0 >= 59.0  # the 11th waited for a minute of simulated time...
    assert time.monotonic() - real < 1.0  # ...in well under a real second


@pytest.mark.parametrize("kwargs", [{"per_minute": 0}, {"concurrency": 0}, {"headroom": 0}, {"headroom": 1.5}])
def test_bad_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Throttle(ManualClock(), **kwargs)  # type: ignore[arg-type]


def test_simultaneous_429s_do_not_escalate_the_hold() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock)
    first = throttle.on_429()
    assert [throttle.on_429() for _ in range(9)] == [first] * 9  # ten in-flight requests, one hold
    clock.advance(first + 0.1)
    assert throttle.on_429() == 2 * first  # a 429 after the hold ended escalates
