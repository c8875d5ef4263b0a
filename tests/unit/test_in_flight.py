"""The shared worker threads behind concurrent lookups, probes and ConnectWise reads."""

from __future__ import annotations

import threading
import time

import pytest

from cwqbo.in_flight import in_flight


def test_results_come_back_in_order_with_at_most_limit_at_once() -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01 * (i % 3))
        with lock:
            running -= 1
        return i * i

    assert in_flight(work, list(range(20)), limit=3) == [i * i for i in range(20)]
    assert peak == 3


def test_every_item_runs_and_the_first_failure_in_item_order_is_raised() -> None:
    done: list[int] = []

    def work(i: int) -> int:
        if i in (7, 3):
            time.sleep(0.02 if i == 3 else 0)
            raise ValueError(f"item {i}")
        done.append(i)
        return i

    with pytest.raises(ValueError, match="item 3"):
        in_flight(work, list(range(10)))
    assert sorted(done) == [0, 1, 2, 4, 5, 6, 8, 9]


def test_a_call_from_a_worker_runs_in_turn_instead_of_waiting_for_busy_workers() -> None:
    def outer(i: int) -> list[int]:
        return in_flight(lambda j: i * 10 + j, [0, 1, 2])

    assert in_flight(outer, list(range(12))) == [[i * 10, i * 10 + 1, i * 10 + 2] for i in range(12)]
