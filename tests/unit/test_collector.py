"""A sync relaxes CPython's cyclic collector while it runs and leaves the process's thresholds as it found them."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cwqbo import collector
from cwqbo.clock import ManualClock
from cwqbo.quickbooks.client import BatchItemResult, BatchOp, QBOClient
from cwqbo.settings.prefs import Filters
from cwqbo.state.store import Store
from cwqbo.sync import discover
from tests.unit.test_discover import FakeCW, raw_invoice
from tests.unit.test_sync import World, _assert_exactly_once, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path)


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """The default thresholds for the test, whatever the process had; put back afterwards."""
    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield gc.get_threshold()
    finally:
        gc.set_threshold(*saved)


def test_the_young_threshold_is_raised_for_the_run_and_restored_after_an_error(
        thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), collector.relaxed():
        assert gc.get_threshold() == (collector.YOUNG_THRESHOLD, 10, 10)
        raise RuntimeError("the run failed")
    assert gc.get_threshold() == thresholds


def test_overlapping_runs_restore_the_thresholds_only_when_the_last_one_ends(
        thresholds: tuple[int, int, int]) -> None:
    with collector.relaxed():
        with collector.relaxed():
            pass
        assert gc.get_threshold()[0] == collector.YOUNG_THRESHOLD  # the outer run is still going
    assert gc.get_threshold() == thresholds


@pytest.mark.parametrize("young", [0, 50_000])
def test_a_disabled_or_already_higher_threshold_is_left_alone(thresholds: tuple[int, int, int], young: int) -> None:
    gc.set_threshold(young, 10, 10)
    with collector.relaxed():
        assert gc.get_threshold() == (young, 10, 10)
    assert gc.get_threshold() == (young, 10, 10)


def test_a_sync_runs_with_the_relaxed_collector_and_gives_the_thresholds_back(
        world: World, monkeypatch: pytest.MonkeyPatch, thresholds: tuple[int, int, int]) -> None:
    seen: list[int] = []
    real = QBOClient.batch

    def recording(self: QBOClient, items: list[BatchOp], request_id: str | None = None,
                  **kw: Any) -> dict[str, BatchItemResult]:
        seen.append(gc.get_threshold()[0])
        return real(self, items, request_id, **kw)

    monkeypatch.setattr(QBOClient, "batch", recording)
    report = world.sync()
    assert report.created == len(_assert_exactly_once(world)) > 0
    assert seen and set(seen) == {collector.YOUNG_THRESHOLD}
    assert gc.get_threshold() == thresholds


def test_a_cache_refresh_on_its_own_runs_relaxed_too(tmp_path: Path, thresholds: tuple[int, int, int]) -> None:
    """`refilter` and `list-unsynced` refresh the cache outside any sync run."""
    seen: list[int] = []

    class Recording(FakeCW):
        def products_for(self, ids: Any) -> dict[int, list[dict[str, Any]]]:
            seen.append(gc.get_threshold()[0])
            return super().products_for(ids)

    store = Store.open(tmp_path / "cwqbo.db")
    try:
        found = discover.refresh(Recording([raw_invoice(i) for i in range(1, 6)]), store, Filters(), full=True,
                                 clock=ManualClock(start=1_795_500_000.0))
    finally:
        store.close()
    assert found.fetched == 5
    assert seen == [collector.YOUNG_THRESHOLD]
    assert gc.get_threshold() == thresholds
