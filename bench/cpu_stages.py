"""Our CPU per invoice, stage by stage: each pure step of a sync timed alone, without threads, HTTP or simulator.

Run:  .venv/bin/python bench/cpu_stages.py                 # the invoices of one sync of 1,000 generated invoices
      .venv/bin/python bench/cpu_stages.py --invoices 3000 --repeat 7

One sync of the sandbox records what each stage was called with (the very invoices, prefs, references and
payloads of that run); each stage is then run again on all of it, `--repeat` times, and its time per call printed
as median (min-max). `sync_throughput.py`'s "our CPU per invoice" is the whole run: it also holds HTTP, SQLite,
threads, the resolver and the cyclic collector, and swings with the machine and with which thread starts a full
collection. These figures hold still, so a change to one stage shows here when the whole-run figure cannot show it.
Not a test: figures vary by machine.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import print_table, spread  # noqa: E402

from cwqbo.connectwise import records  # noqa: E402
from cwqbo.mapping import document  # noqa: E402
from cwqbo.state import cache  # noqa: E402
from cwqbo.sync.engine import SyncDeps, SyncOptions, run_sync  # noqa: E402

Call = tuple[tuple[Any, ...], dict[str, Any]]

# (label, module, function name): the pure per-invoice steps of a sync, in the order an invoice meets them.
STAGES: tuple[tuple[str, ModuleType, str], ...] = (
    ("ConnectWise records -> invoice (records.build_invoice)", records, "build_invoice"),
    ("cache row: record JSON + content hash (cache.invoice_row)", cache, "invoice_row"),
    ("needs and line plan (document.needs_and_plan)", document, "needs_and_plan"),
    ("QBO document (document.build_document)", document, "build_document"),
    ("payload JSON + sha256 (document.payload_json)", document, "payload_json"),
)


@dataclass
class StageFigures:
    label: str
    calls: int
    per_call_us: list[float] = field(default_factory=list)  # one figure per repeat


@contextmanager
def _recording(module: ModuleType, name: str, sink: list[Call]) -> Iterator[None]:
    """`module.name` records the arguments of each call that returns while the body runs (callers look it up on the
    module); the run's invoices that fail on purpose (a number too long, ...) are left out."""
    original = getattr(module, name)

    def recorded(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        sink.append((args, kwargs))
        return result

    setattr(module, name, recorded)
    try:
        yield
    finally:
        setattr(module, name, original)


def record_calls(n: int, *, seed: int = 1) -> dict[str, list[Call]]:
    """One `sync --all` of `n` generated invoices (in-process sandbox, fast clock); each stage's calls."""
    calls: dict[str, list[Call]] = {label: [] for label, _, _ in STAGES}
    with tempfile.TemporaryDirectory(prefix="cwqbo-bench-") as tmp:
        world = common.make_world(n, Path(tmp) / "stages.db", scale=1000.0, latency=0.0, seed=seed)
        try:
            prefs, filters = common.default_prefs()
            deps = SyncDeps(world.store, world.cw, world.qbo, prefs, filters, common.sv.QBO_REALM_ID, world.clock)
            with ExitStack() as stack:
                for label, module, name in STAGES:
                    stack.enter_context(_recording(module, name, calls[label]))
                run_sync(deps, SyncOptions(selection="all", trigger="all"))
        finally:
            world.close()
    return calls


def time_stages(calls: dict[str, list[Call]], repeat: int) -> list[StageFigures]:
    """Each stage run on all its recorded calls, `repeat` times: microseconds per call. The cyclic collector is off
    while a pass runs, as in `timeit`: when it runs is chance, and the whole-run figure counts it."""
    out = []
    for label, module, name in STAGES:
        fn: Callable[..., Any] = getattr(module, name)
        recorded = calls[label]
        figures = StageFigures(label, len(recorded))
        for _ in range(repeat if recorded else 0):
            gc.collect()
            gc.disable()
            try:
                t0 = time.process_time()
                for args, kwargs in recorded:
                    fn(*args, **kwargs)
                figures.per_call_us.append((time.process_time() - t0) * 1e6 / len(recorded))
            finally:
                gc.enable()
        out.append(figures)
    return out


def stage_rows(figures: list[StageFigures], loop: list[float]) -> list[tuple[str, str, str]]:
    rows = [(f.label, spread(f.per_call_us, 1, " us"), f"{f.calls:,} calls") for f in figures if f.per_call_us]
    total = sum(statistics.median(f.per_call_us) for f in figures if f.per_call_us)
    rows.append(("sum of the medians", f"{total:,.1f} us", "per invoice, if each invoice meets each stage once"))
    rows.append(("the machine's pace", spread(loop, 3, " s"),
                 "the README's 10-million-iteration loop, timed beside these (this machine drifts by half over a day)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per stage; median (min-max) printed")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    repeat = max(1, args.repeat)
    figures = time_stages(record_calls(args.invoices, seed=args.seed), repeat)
    loop = [common.machine_pace() for _ in range(min(repeat, 3))]
    print_table(f"our CPU per call, stage by stage ({args.invoices:,} generated invoices, {repeat} passes, "
                "process CPU, cyclic GC off)", stage_rows(figures, loop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
