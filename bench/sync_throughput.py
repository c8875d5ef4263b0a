"""Sync throughput against the sandbox with QBO's real limits on a scaled clock (issue 7).

Run:  .venv/bin/python bench/sync_throughput.py                  # 1,000 and 10,000 invoices + naive loop
      .venv/bin/python bench/sync_throughput.py --sizes 1000 --scale 10 --latency 0.25
      .venv/bin/python bench/sync_throughput.py --no-naive

For each size: one `cwqbo sync --all` (discover from ConnectWise, resolve, probe, batch-create, CW batch)
into a fresh store, then an idle re-run. Prints simulated invoices/min, the rate-limit bound for this
run's request mix and their ratio, QBO and CW calls per invoice, our CPU per invoice (simulator CPU
subtracted), peak memory, and — with the naive loop — how many times faster the real sync is.
Not a test: figures vary by machine; the scale and latency used are printed with the results.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Sample, fmt, measure, print_table, rate_bound, verdict  # noqa: E402

from cwqbo.sync.engine import SyncDeps, SyncEvent, SyncOptions, SyncReport, run_sync  # noqa: E402

BATCH_LIMIT = 40
BATCH_ITEMS = 30
TARGET_RATIO = 0.90
TARGET_QBO_PER_INVOICE = 0.06
TARGET_CW_PER_INVOICE = 0.05
TARGET_CPU_MS = 1.0
TARGET_NAIVE_SPEEDUP = 10.0


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

    @property
    def per_min(self) -> float:
        return self.invoices / (self.sample.sim_seconds / 60) if self.sample.sim_seconds > 0 else float("inf")

    @property
    def bound(self) -> tuple[float, str]:
        return rate_bound(self.invoices, self.sample.qbo_requests, self.sample.batch_requests)


def run_sync_bench(n: int, *, scale: float, latency: float, workdir: Path, seed: int = 1) -> SyncFigures:
    """One full sync of `n` generated invoices, measured; then an idle re-run (nothing new) for steady state."""
    world = common.make_world(n, workdir / f"sync-{n}.db", scale=scale, latency=latency, seed=seed)
    try:
        prefs, filters = common.default_prefs()
        deps = SyncDeps(world.store, world.cw, world.qbo, prefs, filters, common.sv.QBO_REALM_ID, world.clock)
        phases: dict[str, float] = {}
        t0 = world.clock.now()

        def progress(event: SyncEvent) -> None:
            if event.phase != "item":
                phases.setdefault(event.phase, world.clock.now() - t0)

        with measure(world) as sample:
            report = run_sync(deps, SyncOptions(selection="all", trigger="all"), progress)
        with measure(world) as idle:
            run_sync(deps, SyncOptions(selection="all", trigger="all"))
        # The run's invoices are what it selected (created + adopted + failed): generated problem invoices fail
        # on purpose, but they still cost their share of reads.
        return SyncFigures(len(report.items), report.created, report.failed, sample, idle, report, scale, latency,
                           phases)
    finally:
        world.close()


def sync_rows(f: SyncFigures, naive_per_min: float | None) -> list[tuple[str, str, str]]:
    s = f.sample
    n = max(1, f.invoices)
    bound, formula = f.bound
    ratio = f.per_min / bound if bound else 0.0
    qbo_per = s.qbo_requests / n
    cw_per = s.cw_requests / n
    cpu_ms = s.own_cpu * 1000 / n
    rows = [
        ("invoices selected (created / failed)", f"{f.invoices:,} ({f.created:,} / {f.failed:,})", ""),
        ("simulated time", f"{fmt(s.sim_seconds)} s", f"(real {fmt(s.real_seconds)} s at scale {f.scale:g}, "
                                                       f"{f.latency:g} s simulated latency per request)"),
        ("simulated invoices/min", fmt(f.per_min), ""),
        ("rate-limit bound, invoices/min", fmt(bound), formula),
        ("fits in one rate-limit minute?", "yes" if s.batch_requests <= 40 and s.qbo_requests <= 500 else "no",
         "(<= 40 batch calls and <= 500 requests: the limits never bind, so the ratio can exceed 100%)"),
        ("ratio to the bound", f"{ratio:.1%}", f"{verdict(ratio >= TARGET_RATIO)} (>= {TARGET_RATIO:.0%}"
                                                + (", 1,000-invoice target)" if f.invoices <= 1500 else ")")),
        ("QBO calls per invoice (full run)", f"{qbo_per:.4f}",
         f"{verdict(qbo_per <= TARGET_QBO_PER_INVOICE)} (<= {TARGET_QBO_PER_INVOICE}); "
         f"{s.batch_requests} batch of {s.qbo_requests}"),
        ("CW calls per invoice (full run)", f"{cw_per:.4f}",
         f"{verdict(cw_per <= TARGET_CW_PER_INVOICE)} (<= {TARGET_CW_PER_INVOICE}); {s.cw_requests} calls"),
        ("idle re-run: QBO / CW calls", f"{f.idle.qbo_requests} / {f.idle.cw_requests}",
         "(a steady-state run with nothing new to send)"),
        ("our CPU per invoice", f"{cpu_ms:.3f} ms",
         f"{verdict(cpu_ms <= TARGET_CPU_MS)} (<= {TARGET_CPU_MS:g} ms); process CPU {fmt(s.cpu, 2)} s minus "
         f"simulator CPU {fmt(s.sim_cpu, 2)} s"),
        ("peak RSS (whole process)", f"{fmt(s.rss_peak_mb)} MB",
         f"{fmt(s.rss_before_mb)} MB before the run (simulators + generated data included)"),
    ]
    if f.phases:
        order = sorted(f.phases.items(), key=lambda kv: kv[1])
        rows.append(("phases start at (simulated s)", "", ", ".join(f"{k} {v:,.0f}" for k, v in order)))
        start = f.phases.get("create")
        end = f.phases.get("batch", s.sim_seconds)
        creates = s.batch_requests  # upper bound on the create phase's batch calls (resolve's are earlier)
        if start is not None and end > start:
            sent = f.created
            rate = sent / ((end - start) / 60)
            cap = BATCH_LIMIT * BATCH_ITEMS
            rows.append(("create phase invoices/min", fmt(rate),
                         f"{rate / cap:.1%} of {BATCH_LIMIT} batch calls x {BATCH_ITEMS} a minute "
                         f"({creates} batch calls in the run); before it: {start:,.0f} s of discover/resolve/probe"))
    if naive_per_min:
        speedup = f.per_min / naive_per_min
        rows.append(("speed-up over the naive loop", f"{speedup:.1f}x",
                     f"{verdict(speedup >= TARGET_NAIVE_SPEEDUP)} (>= {TARGET_NAIVE_SPEEDUP:g}x; naive "
                     f"{fmt(naive_per_min)} invoices/min)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--scale", type=float, default=5.0,
                        help="simulated seconds per real second (our CPU is magnified by this too)")
    parser.add_argument("--latency", type=float, default=0.2, help="simulated network seconds per API request")
    parser.add_argument("--naive", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--naive-size", type=int, default=300,
                        help="invoices for the naive loop (its rate is steady, so a few hundred suffice)")
    parser.add_argument("--naive-scale", type=float, default=40.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    args = parser.parse_args(argv)

    with common.workdir(args.workdir) as tmp:
        naive_per_min = None
        if args.naive:
            import naive_loop

            nf = naive_loop.run_naive_bench(args.naive_size, scale=args.naive_scale, latency=args.latency,
                                            workdir=Path(tmp), seed=args.seed)
            print_table(f"naive one-invoice-at-a-time loop, {nf.invoices:,} invoices", naive_loop.naive_rows(nf))
            naive_per_min = nf.per_min
        for n in args.sizes:
            figures = run_sync_bench(n, scale=args.scale, latency=args.latency, workdir=Path(tmp), seed=args.seed)
            print_table(f"cwqbo sync --all, {n:,} generated invoices", sync_rows(figures, naive_per_min))
    print("\nrate-limit bound: QBO allows 40 batch calls (<= 30 items) and 500 requests per minute per company; "
          "a run needing B batch calls and R requests takes at least max(B/40, R/500) minutes. A run that fits "
          "in one sliding minute (<= 40 batch calls) can beat that steady-state bound.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
