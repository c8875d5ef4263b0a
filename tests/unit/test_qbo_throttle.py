"""The client-side QBO throttle: sliding windows, batch window, concurrency cap, the hold after a 429."""

from __future__ import annotations

import threading
import time

import pytest

from cwqbo.clock import ManualClock, ScaledClock
from cwqbo.http import MAX_RETRY_AFTER
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


def test_batch_window_is_separate_and_uses_all_forty_calls() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock, batch_per_minute=40)
    batches = starts(throttle, clock, 81, batch=True)
    # all 40 of QBO's batch calls a minute are used (the bottleneck of a large sync); answered at once, a call has
    # reached Intuit by the time it was sent, so the 41st waits exactly a minute
    assert batches[39] == 0.0 and 60.0 <= batches[40] < 60.1 and 120.0 <= batches[80] < 120.2
    assert starts(throttle, clock, 1)[0] == clock.now()  # ordinary requests are not held by the batch window


@pytest.mark.parametrize(("answer_after", "window"), [(0.25, 60.25), (5.0, 61.0)])
def test_a_batch_call_counts_until_its_answer_or_the_margin_whichever_is_sooner(answer_after: float,
                                                                                window: float) -> None:
    # Intuit stamps a call somewhere between our send and its answer: counting it until the answer came (or, for a
    # slow answer, a second after the send) keeps every 60-second window of Intuit's at 40 calls at most.
    clock = ManualClock(0.0)
    throttle = Throttle(clock, batch_per_minute=40, concurrency=40)
    calls = [throttle.acquire(batch=True) for _ in range(40)]  # all sent at 0
    clock.advance(answer_after)
    for call in calls:
        throttle.release(call)
    assert window <= starts(throttle, clock, 1, batch=True)[0] < window + 0.01


def test_answers_out_of_order_still_keep_forty_a_minute() -> None:
    # Two calls in flight at once, the later one answered first: the window must not lose track of the earlier.
    clock = ManualClock(0.0)
    throttle = Throttle(clock, batch_per_minute=2)
    slow = throttle.acquire(batch=True)
    fast = throttle.acquire(batch=True)
    clock.advance(0.1)
    throttle.release(fast)  # answered after 0.1 s: counts until 0.1
    clock.advance(2.0)
    throttle.release(slow)  # answered after 2.1 s: counts until the margin, 1.0
    assert throttle.batch_slots_free() == 0
    assert starts(throttle, clock, 1, batch=True)[0] == pytest.approx(60.1, abs=0.01)  # the first of them to leave


def test_on_429_holds_every_request_for_the_wait() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock)
    assert throttle.on_429(12) == 12
    assert starts(throttle, clock, 1)[0] >= 12.0
    assert throttle.throttled == 1


def test_on_429_hold_is_capped_and_never_negative() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock)
    assert throttle.on_429(10_000) == MAX_RETRY_AFTER
    fresh = Throttle(clock)
    assert fresh.on_429(-5) == 0 and starts(fresh, clock, 1)[0] == 0.0


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


@pytest.mark.parametrize("kwargs", [{"per_minute": 0}, {"concurrency": 0}, {"headroom": 0}, {"headroom": 1.5},
                                    {"batch_margin": -1}])
def test_bad_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Throttle(ManualClock(), **kwargs)  # type: ignore[arg-type]


def test_a_shorter_hold_never_shortens_a_running_one() -> None:
    clock = ManualClock(0.0)
    throttle = Throttle(clock)
    assert throttle.on_429(8) == 8
    clock.advance(1)
    assert [throttle.on_429(1) for _ in range(3)] == [7, 7, 7]  # in-flight requests' 429s: one hold
    assert throttle.on_429(10) == 10  # a longer wait extends it
    assert throttle.throttled == 5


def test_what_the_single_budget_can_start_within_a_time_and_whether_a_batch_call_can_start_now() -> None:
    # The sender sizes a slice's single-request creates by these: what can start while queued batches are sent.
    clock = ManualClock(0.0)
    throttle = Throttle(clock, per_minute=500, headroom=0.95)  # 475 a minute
    starts(throttle, clock, 400)
    clock.advance(30)
    starts(throttle, clock, 50)
    assert throttle.free_within(0) == 25 and throttle.free_within(29) == 25  # nothing leaves the window yet
    assert throttle.free_within(31) == 425  # the first 400 have left it 60 s after they started
    assert throttle.free_within(91) == 475
    fresh = Throttle(clock, per_minute=500, headroom=0.95)
    assert fresh.batch_slots_free() == 40
    starts(fresh, clock, 40, batch=True)
    assert fresh.batch_slots_free() == 0 and fresh.free_within(0) == 435  # batch calls count on both budgets
    clock.advance(59.9)
    assert fresh.batch_slots_free() == 0 and fresh.free_within(0) == 435
    clock.advance(0.11)  # answered at once, the calls leave the window a minute after they were sent
    assert fresh.batch_slots_free() == 40 and fresh.free_within(0) == 475
