"""Sync throughput against the sandbox with QBO's real limits on a scaled clock (issue 7).

Run:  .venv/bin/python bench/sync_throughput.py                  # 1,000 and 10,000 invoices, 3 runs, + baselines
      .venv/bin/python bench/sync_throughput.py --sizes 1000 --scale 10 --latency 0.25
      .venv/bin/python bench/sync_throughput.py --sizes 10000 100000 --scale 30 --repeat 1 --memory

For each size: one `cwqbo sync --all` (discover from ConnectWise, resolve, probe, batch-create, CW batch)
into a fresh store, then an idle re-run. Prints simulated invoices/min, the rate-limit bound for this
run's request mix and their ratio, QBO and CW calls per invoice, our CPU per invoice (simulator CPU
subtracted), the whole process's peak memory, and — with the naive loop — how many times faster the real sync is.
`--memory` instead runs each sync in a process of its own (bench/sync_process.py), the simulators served from
this one, and prints that process's peak resident memory.
Not a test: figures vary by machine; the scale and latency used are printed with the results.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import PACE_TURNS, PHYSICAL_PER_MIN, Sample, fmt, measure, pct_spread, print_table, rate_bound, spread, verdict  # noqa: E402,E501

from cwqbo.sync.engine import SyncDeps, SyncEvent, SyncOptions, SyncReport, run_sync  # noqa: E402

BATCH_LIMIT = 40
QBO_WINDOW = 61.0  # simulated seconds: longer than the client holds a batch call in its window (a minute + its margin)
BATCH_ITEMS = 30
# Issue 12's targets: at 10,000 invoices and more, >= 95 % of the physical limit end to end and >= 98 % in the
# create phase; 1,000 invoices within 60 simulated seconds; <= 0.5 ms of our CPU an invoice.
TARGET_RATIO = 0.95
TARGET_CREATE_RATIO = 0.98
TARGET_SMALL_SECONDS = 60.0
LARGE = 10_000
TARGET_QBO_PER_INVOICE = 0.06
TARGET_CW_PER_INVOICE = 0.05
TARGET_CPU_MS = 0.5
TARGET_NAIVE_SPEEDUP = 10.0
TARGET_PEER_SPEEDUP = 8.0
SETTLED = "last settled"  # the phase name under which the time of the last invoice settled is recorded
TARGET_MEMORY_RATIO = 1.5  # the cwqbo process's peak memory at 100,000 invoices over its peak at 10,000


@dataclass
class SyncFigures:
    invoices: int
    created: int
    failed: int
    sample: Sample
    idle: Sample
    report: SyncReport
    scale: float
    latency: float
    phases: dict[str, float] = field(default_factory=dict)  # phase -> simulated seconds from the run's start
    pace: float = 0.0  # the machine's pace just before the run (common.machine_pace)

    @property
    def per_min(self) -> float:
        return self.invoices / (self.sample.sim_seconds / 60) if self.sample.sim_seconds > 0 else float("inf")

    @property
    def bound(self) -> tuple[float, str]:
        return rate_bound(self.invoices, self.sample.qbo_requests, self.sample.batch_requests)


def run_sync_bench(n: int, *, scale: float, latency: float, workdir: Path, seed: int = 1) -> SyncFigures:
    """One full sync of `n` generated invoices, measured; then an idle re-run (nothing new) for steady state."""
    db = workdir / f"sync-{n}.db"
    for stale in workdir.glob(f"sync-{n}.db*"):  # --repeat: every run starts from a fresh store
        stale.unlink()
    world = common.make_world(n, db, scale=scale, latency=latency, seed=seed)
    try:
        prefs, filters = common.default_prefs()
        deps = SyncDeps(world.store, world.cw, world.qbo, prefs, filters, common.sv.QBO_REALM_ID, world.clock)
        phases: dict[str, float] = {}
        pace = common.machine_pace()  # before the run's clock starts: the phases are timed from t0
        t0 = world.clock.now()

        progress = _phase_recorder(phases, world.clock, t0)

        with measure(world) as sample:
            report = run_sync(deps, SyncOptions(selection="all", trigger="all"), progress)
        with measure(world) as idle:
            run_sync(deps, SyncOptions(selection="all", trigger="all"))
        # The run's invoices are what it selected (created + adopted + failed): generated problem invoices fail
        # on purpose, but they still cost their share of reads.
        return SyncFigures(len(report.items), report.created, report.failed, sample, idle, report, scale, latency,
                           phases, pace)
    finally:
        world.close()


@dataclass
class MemoryFigures:
    """`--memory`: the cwqbo process's own memory, its simulators in another process."""

    invoices: int
    created: int
    peak_mb: float  # peak resident memory of the cwqbo process (VmHWM)
    before_mb: float  # its resident memory just before the run (interpreter, imports, clients, open store)
    sim_seconds: float
    cpu_s: float  # the cwqbo process's CPU for the run: no simulator in it, real HTTP over loopback


def run_memory_bench(n: int, *, scale: float, latency: float, workdir: Path, seed: int = 1) -> MemoryFigures:
    """`sync --all` of `n` generated invoices in a child process (bench/sync_process.py) against the sandbox served
    on loopback from this one; both read one simulated clock from CLOCK_MONOTONIC. The child's peak resident
    memory is cwqbo's own: the simulators and their data live here, never in it."""
    import json
    import subprocess
    import time

    from cwqbo.sandbox.bridge import LoopbackServer
    from cwqbo.clock import ScaledClock

    db = workdir / f"memory-{n}.db"
    for stale in workdir.glob(f"memory-{n}.db*"):
        stale.unlink()
    clock = ScaledClock(scale, common.START)  # the child reads the same clock: same scale, start and real0
    sandbox = common.sv.Sandbox(seed=seed, invoices=n, clock=clock)
    pause = latency / scale

    def handle(request: common.httpx.Request) -> common.httpx.Response:
        response = sandbox.handle(request)
        if pause > 0:
            time.sleep(pause)  # server and network time, as in the in-process benches
        return response

    server = LoopbackServer(handle).start()
    try:
        setup = {**sandbox.credentials(server.url), "token_response": sandbox.qbo.issue_tokens(), "scale": scale,
                 "start": clock.start, "real0": clock.real0, "db": str(db)}
        child = subprocess.run([sys.executable, str(Path(__file__).with_name("sync_process.py")), "--setup",
                                json.dumps(setup)], capture_output=True, text=True, check=False)
    finally:
        server.stop()
    if child.returncode != 0:
        raise RuntimeError(f"the cwqbo process failed ({child.returncode}): {child.stderr.strip()[-2000:]}")
    out = json.loads(child.stdout.strip().splitlines()[-1])
    return MemoryFigures(out["invoices"], out["created"], out["peak_mb"], out["before_mb"], out["sim_seconds"],
                         out["cpu_s"])


def memory_rows(by_size: dict[int, list[MemoryFigures]]) -> list[tuple[str, str, str]]:
    """Peak resident memory of the cwqbo process per size, and the largest size's ratio to the smallest's."""
    rows: list[tuple[str, str, str]] = []
    for n, runs in by_size.items():
        f = runs[0]
        rows.append((f"{n:,} invoices: peak resident memory", spread([r.peak_mb for r in runs], unit=" MB"),
                     f"{spread([r.before_mb for r in runs], unit=' MB')} just before the run; {f.invoices:,} selected, "
                     f"{f.created:,} created, {spread([r.sim_seconds for r in runs])} simulated s"))
        rows.append((f"{n:,} invoices: CPU of the cwqbo process per invoice",
                     spread([r.cpu_s * 1000 / max(1, r.invoices) for r in runs], 3, " ms"),
                     "no simulator in the process; real HTTP over loopback (the in-process figure has none)"))
    sizes = sorted(by_size)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        ratio = statistics.median(r.peak_mb for r in by_size[large]) / statistics.median(
            r.peak_mb for r in by_size[small])
        target = f"{verdict(ratio <= TARGET_MEMORY_RATIO)} (<= {TARGET_MEMORY_RATIO:g}x)" if (
            small == LARGE and large >= 10 * LARGE) else "(the target compares 100,000 with 10,000)"
        rows.append((f"peak at {large:,} / peak at {small:,}", f"{ratio:.2f}x", target))
    return rows


def run_steady_bench(n: int, *, scale: float, latency: float, workdir: Path, seed: int = 1) -> SyncFigures:
    """A later month: the first half of 2n generated invoices is synced first (not measured), which creates and
    caches the customers; then `sync --all` sends the second half, measured. That is the steady state of a
    scheduled sync: invoices for companies it has already met (a few new ones among them)."""
    db = workdir / f"steady-{n}.db"
    for stale in workdir.glob(f"steady-{n}.db*"):
        stale.unlink()
    world = common.make_world(2 * n, db, scale=scale, latency=latency, seed=seed)
    try:
        prefs, filters = common.default_prefs()
        deps = SyncDeps(world.store, world.cw, world.qbo, prefs, filters, common.sv.QBO_REALM_ID, world.clock)
        cw = world.sandbox.cw  # its public API (a copy of the data), outside the measured run
        ids = sorted(int(inv["id"]) for inv in cw.invoices())[:n]
        first = tuple(str(cw.invoice(i)["invoiceNumber"]) for i in ids if cw.is_closed(i))
        run_sync(deps, SyncOptions(selection="invoices", invoice_numbers=first, trigger="manual"))
        world.clock.sleep(QBO_WINDOW)  # a month later: QBO's rate-limit windows have long emptied
        phases: dict[str, float] = {}
        pace = common.machine_pace()  # before the run's clock starts: the phases are timed from t0
        t0 = world.clock.now()

        progress = _phase_recorder(phases, world.clock, t0)

        with measure(world) as sample:
            report = run_sync(deps, SyncOptions(selection="all", trigger="all"), progress)
        with measure(world) as idle:
            run_sync(deps, SyncOptions(selection="all", trigger="all"))
        return SyncFigures(len(report.items), report.created, report.failed, sample, idle, report, scale, latency,
                           phases, pace)
    finally:
        world.close()


def _phase_recorder(phases: dict[str, float], clock: common.BenchClock, t0: float) -> Callable[[SyncEvent], None]:
    """Progress that records when each phase first starts and, under SETTLED, when the last invoice was settled
    (the create phase's end: ConnectWise batches whole parts while QBO paces the last documents)."""
    def progress(event: SyncEvent) -> None:
        if event.phase == "item":
            phases[SETTLED] = clock.now() - t0
        else:
            phases.setdefault(event.phase, clock.now() - t0)
    return progress


def _per_min(n: int, sim_seconds: float) -> float:
    return n / (sim_seconds / 60) if sim_seconds > 0 else float("inf")


def sync_rows(runs: list[SyncFigures], naive: list[float] | None,
              peer: list[float] | None = None, *, steady: bool = False) -> list[tuple[str, str, str]]:
    """The table for one size: every figure the median of `runs`, with (min-max) when there are several. `steady`:
    a later month's run (customers known), which the calls-per-invoice target is for (issue 7: "in steady state")."""
    f = sorted(runs, key=lambda r: r.per_min)[len(runs) // 2]  # the median run, for counts and phases
    s = f.sample
    n = max(1, f.invoices)
    per_min = [r.per_min for r in runs]
    physical = [r.per_min / PHYSICAL_PER_MIN for r in runs]
    own_mix = [r.per_min / r.bound[0] if r.bound[0] else 0.0 for r in runs]
    qbo_per = [r.sample.qbo_requests / max(1, r.invoices) for r in runs]
    cw_per = [r.sample.cw_requests / max(1, r.invoices) for r in runs]
    cpu_ms = [r.sample.own_cpu * 1000 / max(1, r.invoices) for r in runs]
    gc_ms = [r.sample.gc_own * 1000 / max(1, r.invoices) for r in runs]
    turns = [ms / 1000 / (r.pace / PACE_TURNS) for ms, r in zip(cpu_ms, runs, strict=True) if r.pace > 0]
    med = statistics.median
    rows = [
        ("runs", str(len(runs)), "every figure: median (min-max) of the runs"),
        ("invoices selected (created / failed)", f"{f.invoices:,} ({f.created:,} / {f.failed:,})", ""),
        ("simulated time", spread([r.sample.sim_seconds for r in runs], unit=" s"),
         (f"{verdict(med([r.sample.sim_seconds for r in runs]) <= TARGET_SMALL_SECONDS)} "
          f"(<= {TARGET_SMALL_SECONDS:g} s for 1,000); " if f.invoices <= 1000 else "")
         + f"(real {spread([r.sample.real_seconds for r in runs], unit=' s')} at scale {f.scale:g}, "
         f"{f.latency:g} s simulated latency per request)"),
        ("simulated invoices/min", spread(per_min), ""),
        ("ratio to QBO's physical limit", pct_spread(physical),
         (f"{verdict(med(physical) >= TARGET_RATIO)} (>= {TARGET_RATIO:.0%} at {LARGE:,}+); "
          if f.invoices >= LARGE * 0.8 else "")
         + f"invoices/min / {PHYSICAL_PER_MIN:,} (40 batch calls x 30 documents a minute: the most any client "
         "can create in one company)"),
        ("ratio to this run's own-mix bound", pct_spread(own_mix),
         f"bound {fmt(f.bound[0])}/min = {f.bound[1]}"),
        ("fits in one rate-limit minute?", "yes" if s.batch_requests <= 40 and s.qbo_requests <= 500 else "no",
         "(<= 40 batch calls and <= 500 requests: the limits never bind, so a ratio can exceed 100%)"),
        ("QBO calls per invoice (full run)", spread(qbo_per, 4),
         (f"{verdict(med(qbo_per) <= TARGET_QBO_PER_INVOICE)} (<= {TARGET_QBO_PER_INVOICE} in a steady state); "
          if steady else f"(the <= {TARGET_QBO_PER_INVOICE} target is for a steady state: --steady; this run creates "
          "every customer) ") + f"{s.batch_requests} batch of {s.qbo_requests}"),
        ("CW calls per invoice (full run)", spread(cw_per, 4),
         f"{verdict(med(cw_per) <= TARGET_CW_PER_INVOICE)} (<= {TARGET_CW_PER_INVOICE}); {s.cw_requests} calls"),
        ("idle re-run: QBO / CW calls", f"{f.idle.qbo_requests} / {f.idle.cw_requests}",
         "(a steady-state run with nothing new to send)"),
        ("our CPU per invoice", spread(cpu_ms, 3, " ms"),
         f"{verdict(med(cpu_ms) <= TARGET_CPU_MS)} (<= {TARGET_CPU_MS:g} ms); process CPU minus simulator CPU"),
        ("  of it, cyclic GC in our code", spread(gc_ms, 3, " ms"),
         "collections our allocations started (gc callbacks); a full one walks the simulators' objects too"),
        ("the machine's pace", spread([r.pace for r in runs], 3, " s"),
         f"the README's {PACE_TURNS:,}-iteration loop just before each run: our CPU moves with it"),
        ("  our CPU per invoice in turns of that loop", spread(turns, 0) if turns else "-",
         f"each run's CPU per invoice / (its pace / {PACE_TURNS:,}): the figure with the machine's drift divided out"),
        ("peak RSS (whole process)", f"{fmt(max(r.sample.rss_peak_mb for r in runs))} MB",
         f"{fmt(s.rss_before_mb)} MB before the run (simulators + generated data included)"),
    ]
    if f.phases:
        order = sorted(f.phases.items(), key=lambda kv: kv[1])
        settled = f.phases.get(SETTLED, s.sim_seconds)
        rows.append(("phases start at (simulated s)", "", ", ".join(f"{k} {v:,.0f}" for k, v in order)))
        start = f.phases.get("create")
        end = settled
        if start is not None and end > start:
            rate = f.created / ((end - start) / 60)
            target = (f"{verdict(rate / PHYSICAL_PER_MIN >= TARGET_CREATE_RATIO)} (>= {TARGET_CREATE_RATIO:.0%}); "
                      if f.invoices >= LARGE * 0.8 else "")
            rows.append(("create phase invoices/min", fmt(rate),
                         f"{rate / PHYSICAL_PER_MIN:.1%} of the physical limit: {target}from the first create to "
                         f"the last invoice settled; before it: {start:,.0f} s of discover/resolve/probe, after it: "
                         f"{s.sim_seconds - settled:,.1f} s (the ConnectWise batch of the rest)"))
    for label, base, target in (("naive loop", naive, TARGET_NAIVE_SPEEDUP),
                                ("python-quickbooks loop", peer, TARGET_PEER_SPEEDUP)):
        if base:
            speedup = med(per_min) / med(base)
            rows.append((f"speed-up over the {label}", f"{speedup:.1f}x",
                         f"{verdict(speedup >= target)} (>= {target:g}x; median {fmt(med(per_min))} / median "
                         f"{fmt(med(base))} invoices/min, same invoice count)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is reported, min-max beside")
    parser.add_argument("--scale", type=float, default=5.0,
                        help="simulated seconds per real second (our CPU is magnified by this too)")
    parser.add_argument("--latency", type=float, default=0.2, help="simulated network seconds per API request")
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True,
                        help="run the naive loop on the same invoice count (slow: ~4 sequential calls an invoice)")
    parser.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                        help="run the python-quickbooks loop (bench/peer_python_quickbooks.py) on the same count")
    parser.add_argument("--baseline-scale", "--naive-scale", type=float, default=40.0, dest="baseline_scale",
                        help="clock scale for the naive and python-quickbooks loops (latency-bound, so a high scale "
                             "does not flatter them)")
    parser.add_argument("--memory", action="store_true",
                        help="instead of the throughput runs: the cwqbo process's peak memory per size, the sync run in "
                             "a process of its own and the simulators in this one (e.g. --sizes 10000 100000 --scale 30)")
    parser.add_argument("--steady", action=argparse.BooleanOptionalAction, default=False,
                        help="also measure a later month: 2x the invoices generated, the first half synced before "
                             "(not measured), the second half measured with its customers already known")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    args = parser.parse_args(argv)
    repeat = max(1, args.repeat)

    if args.memory:
        with common.workdir(args.workdir) as tmp:
            by_size = {n: [run_memory_bench(n, scale=args.scale, latency=args.latency, workdir=Path(tmp),
                                            seed=args.seed) for _ in range(repeat)] for n in args.sizes}
        print_table("cwqbo sync --all in its own process, simulators in another: peak resident memory (VmHWM)",
                    memory_rows(by_size))
        return 0
    with common.workdir(args.workdir) as tmp:
        for n in args.sizes:
            naive_rates = peer_rates = None
            if args.naive:
                import naive_loop

                nfs = [naive_loop.run_naive_bench(n, scale=args.baseline_scale, latency=args.latency,
                                                  workdir=Path(tmp), seed=args.seed) for _ in range(repeat)]
                print_table(f"naive one-invoice-at-a-time loop, {n:,} generated invoices", naive_loop.naive_rows(nfs))
                naive_rates = [x.per_min for x in nfs]
            if args.peer:
                import peer_python_quickbooks as peer

                pfs = [peer.run_peer_bench(n, scale=args.baseline_scale, latency=args.latency, workdir=Path(tmp),
                                           seed=args.seed) for _ in range(repeat)]
                print_table(f"python-quickbooks loop, {n:,} generated invoices", peer.peer_rows(pfs))
                peer_rates = [x.per_min for x in pfs]
            runs = [run_sync_bench(n, scale=args.scale, latency=args.latency, workdir=Path(tmp), seed=args.seed)
                    for _ in range(repeat)]
            print_table(f"cwqbo sync --all, {n:,} generated invoices", sync_rows(runs, naive_rates, peer_rates))
            if args.steady:
                later = [run_steady_bench(n, scale=args.scale, latency=args.latency, workdir=Path(tmp),
                                          seed=args.seed) for _ in range(repeat)]
                print_table(f"cwqbo sync --all a month later: the second half of {2 * n:,} generated invoices, the "
                            "first half synced before (customers known)", sync_rows(later, None, None, steady=True))
    print(f"\nphysical limit: QBO allows 40 batch calls a minute of <= 30 documents each, so no client can create more "
          f"than {PHYSICAL_PER_MIN:,} documents a minute in one company; the headline ratio is to that. Own-mix bound: "
          "a run needing B batch calls and R requests takes at least max(B/40, R/500) minutes; a run that fits in one "
          "sliding minute (<= 40 batch calls) can beat it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
