"""The collector is relaxed for a run's length only, and put back exactly as it was, even on an error."""

from __future__ import annotations

import gc

import pytest

from cwqbo import collector


def test_a_long_run_relaxes_the_collector_and_puts_it_back() -> None:
    before = gc.get_threshold()
    with collector.long_run():
        assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0  # what lived before the run is out of the collector's walks
        with collector.long_run():  # nested (a refresh inside a sync): the outer setting stays
            assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_an_error_puts_the_collector_back_too() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collector.long_run():
        raise RuntimeError("boom")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
