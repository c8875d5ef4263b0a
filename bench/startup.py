"""`cwqbo --help` start-up time as a ratio to a bare interpreter (target ≤ 3×).

Run: .venv/bin/python bench/startup.py [--runs 15]
Prints the median wall time of each and their ratio. Not a test: figures vary by machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


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
    bare = median_seconds([sys.executable, "-c", "pass"], args.runs)
    helped = median_seconds([sys.executable, "-m", "cwqbo", "--help"], args.runs)
    os.environ["CWQBO_NO_HELP_CACHE"] = "1"
    cold = median_seconds([sys.executable, "-m", "cwqbo", "--help"], args.runs)
    sync_help = median_seconds([sys.executable, "-m", "cwqbo", "sync", "--help"], args.runs)
    del os.environ["CWQBO_NO_HELP_CACHE"]
    print(f"python -c pass              {bare * 1000:8.1f} ms (median of {args.runs})")
    print(f"cwqbo --help                {helped * 1000:8.1f} ms  ratio {helped / bare:5.2f}x  (target <= 3x)"
          f"  {'met' if helped / bare <= 3 else 'MISSED'}")
    print(f"cwqbo --help (no cache)     {cold * 1000:8.1f} ms  ratio {cold / bare:5.2f}x  (first run after install)")
    print(f"cwqbo sync --help           {sync_help * 1000:8.1f} ms  ratio {sync_help / bare:5.2f}x  (imports Typer)")


if __name__ == "__main__":
    main()
