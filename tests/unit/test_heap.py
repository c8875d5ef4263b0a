"""A sync run keeps the cyclic collector off the objects it starts with, and gives them back when it ends."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from cwqbo.heap import frozen_heap
from cwqbo.sync import engine as sync
from tests.unit.test_sync import World, make_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(tmp_path, invoices=8)


def test_a_run_freezes_what_existed_before_it_and_thaws_it_after(world: World) -> None:
    assert gc.get_freeze_count() == 0
    before = len(gc.get_objects())
    seen: list[int] = []
    report = sync.run_sync(world.deps(), sync.SyncOptions(), lambda event: seen.append(gc.get_freeze_count()))
    assert report.created > 0 and seen
    assert min(seen) >= before * 0.9  # every collection during the run skipped (about) all of them
    assert gc.get_freeze_count() == 0  # the collector sees them again: a cycle among them can still be freed


def test_a_failed_run_thaws_too(world: World) -> None:
    def explode(event: sync.SyncEvent) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        sync.run_sync(world.deps(), sync.SyncOptions(), explode)
    assert gc.get_freeze_count() == 0


def test_a_program_that_froze_its_own_heap_keeps_it_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        with frozen_heap():
            pass
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_nested_runs_share_one_freeze_thawed_by_the_outermost() -> None:
    with frozen_heap():
        with frozen_heap():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the inner end leaves the outer run's freeze alone
    assert gc.get_freeze_count() == 0
