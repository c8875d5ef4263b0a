"""Start-up time of `cwqbo --help` and the read-only commands as a ratio to a bare interpreter (target ≤ 3×).

Run: .venv/bin/python bench/startup.py [--runs 15]
Prints the median wall time of each and their ratio. Not a test: figures vary by machine.

The package is byte-compiled first, as `pip install` does (`common.compile_package`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def median_seconds(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import common

    common.compile_package()
    cli = [sys.executable, "-m", "cwqbo"]
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    helped = median_seconds([*cli, "--help"], args.runs)
    os.environ["CWQBO_NO_HELP_CACHE"] = "1"
    cold = median_seconds([*cli, "--help"], args.runs)
    sync_help = median_seconds([*cli, "sync", "--help"], args.runs)
    del os.environ["CWQBO_NO_HELP_CACHE"]
    list_help = median_seconds([*cli, "list-unsynced", "--help"], args.runs)
    saved = os.environ.get("CWQBO_HOME")
    with tempfile.TemporaryDirectory(prefix="cwqbo-startup-") as empty, \
            tempfile.TemporaryDirectory(prefix="cwqbo-startup-") as small:
        os.environ["CWQBO_HOME"] = empty
        history_empty = median_seconds([*cli, "history"], args.runs)
        os.environ["CWQBO_HOME"] = small
        _small_home(Path(small))
        history_small = median_seconds([*cli, "history"], args.runs)
    if saved is None:
        os.environ.pop("CWQBO_HOME", None)
    else:
        os.environ["CWQBO_HOME"] = saved
    print(f"python -c pass              {bare * 1000:8.1f} ms (median of {args.runs})")
    for label, seconds, note in (
            ("cwqbo --help", helped, "target <= 3x"),
            ("cwqbo --help (no cache)", cold, "first run after install"),
            ("cwqbo sync --help", sync_help, "no help cache"),
            ("cwqbo list-unsynced --help", list_help, "read-only: target <= 3x"),
            ("cwqbo history (empty home)", history_empty, "read-only: target <= 3x"),
            ("cwqbo history (small home)", history_small, "read-only: target <= 3x; a 30-invoice store")):
        ratio = seconds / bare
        verdict = ("  met" if ratio <= 3 else "  MISSED") if "target" in note else ""
        print(f"{label:<28}{seconds * 1000:8.1f} ms  ratio {ratio:5.2f}x  ({note}){verdict}")


def _small_home(home: Path) -> None:
    """A home whose default profile has a store with a few cached invoices (history reads it)."""
    import list_unsynced

    list_unsynced.fill_cache(home, 30)


if __name__ == "__main__":
    main()
