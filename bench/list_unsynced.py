"""`cwqbo list-unsynced` on 10,000- and 100,000-invoice caches (target <= 1 s), run as a user would: a fresh process.

Run:  .venv/bin/python bench/list_unsynced.py [--invoices 10000 100000] [--runs 3]

Fills a throwaway CWQBO_HOME's cache with a discover from the sandbox the way `refilter` does (each page's unsynced
invoices judged and their verdicts memoised as it is stored; the refresh is timed, and the judging's share shown),
then times `python -m cwqbo list-unsynced --no-refresh` (the table, and `--json`) end to end, interpreter start-up
included, plus the cache query alone in-process. Then it forgets every memoised verdict (a cache filled by a sync's
discover, which memoises nothing, or prefs changed since) and times `--json`'s first run again: it judges them all.
Prints medians and target met/missed. The package is byte-compiled first, as `pip install` does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import fmt, print_table, verdict  # noqa: E402

from cwqbo.models import CWInvoice  # noqa: E402
from cwqbo.state import cache  # noqa: E402
from cwqbo.state.store import Store  # noqa: E402
from cwqbo.sync import discover, readiness  # noqa: E402
from cwqbo.settings.config import DEFAULT_PROFILE, Paths  # noqa: E402

TARGET_SECONDS = 1.0


def fill_cache(home: Path, n: int, seed: int = 1) -> tuple[int, float, float]:
    """Discover `n` generated invoices into the default profile's cache as `refilter` does (memoising each page's
    verdicts, for the default prefs and no QBO company: what the CLI judges with in this home); returns how many
    are unsynced, the refresh's wall time and the part of it spent judging (the simulator runs in-process, without
    latency)."""
    db = Paths(home, home).db_file(DEFAULT_PROFILE)
    world = common.make_world(n, db, scale=1000.0, latency=0.0, seed=seed)
    try:
        memoise = readiness.memoise_pages(world.store, common.default_prefs()[0], None)
        judging = 0.0

        def on_page(page: list[tuple[CWInvoice, str]]) -> None:
            nonlocal judging
            t0 = time.perf_counter()
            memoise(page)
            judging += time.perf_counter() - t0

        t0 = time.perf_counter()
        discover.refresh(world.cw, world.store, common.Filters(), clock=world.clock, on_page=on_page)
        return len(cache.unsynced(world.store)), time.perf_counter() - t0, judging
    finally:
        world.close()


def forget_verdicts(home: Path) -> None:
    """Empty the readiness memo: the cache as a sync's discover leaves it, or any cache after the prefs changed."""
    store = Store.open(Paths(home, home).db_file(DEFAULT_PROFILE))
    try:
        with store.transaction() as db:
            db.execute("DELETE FROM readiness")
    finally:
        store.close()


def time_cli(home: Path, args: list[str], runs: int) -> tuple[float, float, str]:
    """A first fresh process (it memoises what it judges), then `runs` more: (first wall time, median of the
    others, the last one's output)."""
    env = {**os.environ, "CWQBO_HOME": str(home), "COLUMNS": "160"}
    samples = []
    out = ""
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "cwqbo", *args], env=env, capture_output=True, text=True,
                              check=False)
        samples.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"cwqbo {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[:300]}")
        out = proc.stdout
    return samples[0], statistics.median(samples[1:] or samples), out


def time_query(home: Path, runs: int, page: bool = False) -> float:
    store = Store.open(Paths(home, home).db_file(DEFAULT_PROFILE))
    try:
        samples = []
        for _ in range(runs):
            t0 = time.perf_counter()
            if page:  # what the table reads: count and total in SQL, the first 200 rows without their JSON
                cache.unsynced_summary(store)
                cache.unsynced(store, limit=200, light=True)
            else:
                cache.unsynced(store)
            samples.append(time.perf_counter() - t0)
        return statistics.median(samples)
    finally:
        store.close()


def run(n: int, runs: int, seed: int = 1, where: Path | None = None) -> list[tuple[str, str, str]]:
    with common.workdir(where) as home:
        unsynced, fill_s, judging_s = fill_cache(home, n, seed)
        _, table_s, table_out = time_cli(home, ["list-unsynced", "--no-refresh"], runs)
        json_first_s, json_s, _ = time_cli(home, ["list-unsynced", "--no-refresh", "--json"], runs)
        query_s = time_query(home, runs)
        page_s = time_query(home, runs, page=True)
        forget_verdicts(home)
        unjudged_s, _, _ = time_cli(home, ["list-unsynced", "--no-refresh", "--json"], 0)
    listed = f"{unsynced} unsynced" in table_out or f"{unsynced:,} unsynced" in table_out
    return [
        ("invoices generated / unsynced in cache", f"{n:,} / {unsynced:,}", "" if listed else
         "WARNING: the table's summary line did not show the expected count"),
        ("list-unsynced (table), wall", f"{fmt(table_s, 3)} s",
         f"{verdict(table_s <= TARGET_SECONDS)} (<= {TARGET_SECONDS:g} s, median of {runs} fresh processes "
         "after a first)"),
        ("list-unsynced --json, wall", f"{fmt(json_s, 3)} s", f"{verdict(json_s <= TARGET_SECONDS)}"),
        ("refresh filling the cache (refilter's way)", f"{fmt(fill_s, 3)} s",
         f"of which {fmt(judging_s, 3)} s judging and memoising verdicts (simulator in-process, no latency)"),
        ("--json's first run after the cache was filled", f"{fmt(json_first_s, 3)} s",
         f"{verdict(json_first_s <= TARGET_SECONDS)} (by refilter or `list-unsynced --json`'s refresh: verdicts "
         "memoised as each page was stored)"),
        ("--json's first run with nothing memoised", f"{fmt(unjudged_s, 3)} s",
         f"{verdict(unjudged_s <= TARGET_SECONDS)} (cache filled by a sync, or prefs changed: judges every "
         "invoice, then memoises them)"),
        ("cache.unsynced() query alone", f"{fmt(query_s * 1000, 1)} ms", "(in-process, every row with its JSON)"),
        ("table's queries alone", f"{fmt(page_s * 1000, 1)} ms", "(in-process: summary + first 200 light rows)"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="the throwaway CWQBO_HOME (default: a temp dir)")
    args = parser.parse_args(argv)
    common.compile_package()
    for n in args.invoices:
        where = None if args.workdir is None else args.workdir / str(n)
        print_table(f"cwqbo list-unsynced on a {n:,}-invoice cache", run(n, args.runs, args.seed, where))
    return 0


if __name__ == "__main__":
    sys.exit(main())
