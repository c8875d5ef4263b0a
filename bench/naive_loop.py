"""The naive baseline: one invoice at a time — look up the customer, each item, the DocNumber, then create.

Run:  .venv/bin/python bench/naive_loop.py [--invoices 300] [--scale 40] [--latency 0.2]

This is what a straightforward integration does, and what issue 7 compares `cwqbo sync` against.
It is generous to the naive loop: ConnectWise is read with the same bulk discover as the real sync, and
the customers and items already exist in QuickBooks (created beforehand, outside the measurement), so
every invoice costs only its lookups and one create. The lookups are real requests under the same
limits; payloads are built from references resolved before the measured loop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import PHYSICAL_PER_MIN, Sample, fmt, measure, pct_spread, print_table, rate_bound, spread  # noqa: E402,E501

from cwqbo.state import cache  # noqa: E402
from cwqbo.sync import discover
from cwqbo.mapping import document
from cwqbo.mapping.errors import MappingError
from cwqbo.errors import CwqboError  # noqa: E402
from cwqbo.quickbooks.query import escape  # noqa: E402
from cwqbo.sync.resolve import Resolver  # noqa: E402
from cwqbo.sync.engine import with_marker  # noqa: E402


@dataclass
class NaiveFigures:
    invoices: int
    created: int
    failed: int
    sample: Sample
    scale: float
    latency: float

    @property
    def per_min(self) -> float:
        return self.invoices / (self.sample.sim_seconds / 60) if self.sample.sim_seconds > 0 else float("inf")


def run_naive_bench(n: int, *, scale: float, latency: float, workdir: Path, seed: int = 1) -> NaiveFigures:
    for stale in workdir.glob(f"naive-{n}.db*"):  # repeated runs start from a fresh store
        stale.unlink()
    world = common.make_world(n, workdir / f"naive-{n}.db", scale=scale, latency=latency, seed=seed)
    try:
        prefs, filters = common.default_prefs()
        discover.refresh(world.cw, world.store, filters, clock=world.clock)
        invoices = [row.invoice() for row in cache.unsynced(world.store)]
        needs = {}
        for inv in invoices:
            try:
                needs[inv.id] = document.needs(inv, prefs)
            except MappingError:
                continue
        # Setup, not measured: make sure customers and items exist, and get refs to build payloads from.
        refs = Resolver(world.qbo, world.store, common.sv.QBO_REALM_ID, prefs).resolve(needs).refs
        created = failed = 0
        with measure(world) as sample:
            for inv in invoices:
                if inv.id not in refs:
                    failed += 1
                    continue
                need = needs[inv.id]
                try:
                    world.qbo.query(f"SELECT Id FROM Customer WHERE DisplayName = '{escape(need.customer.key)}'")
                    for item in sorted(need.items):
                        world.qbo.query(f"SELECT Id, Taxable FROM Item WHERE Name = '{escape(item)}'")
                    doc = document.build_document(inv, prefs, refs[inv.id])
                    if world.qbo.query(f"SELECT Id FROM {doc.entity} WHERE DocNumber = '{escape(doc.doc_number)}'"):
                        failed += 1
                        continue
                    world.qbo.create(doc.entity, with_marker(doc.payload, inv.id), f"naive-{inv.id}")
                    created += 1
                except (CwqboError, MappingError):
                    failed += 1
        return NaiveFigures(len(invoices), created, failed, sample, scale, latency)
    finally:
        world.close()


def naive_rows(runs: list[NaiveFigures]) -> list[tuple[str, str, str]]:
    """Every figure the median of `runs` (min-max beside when there are several)."""
    f = sorted(runs, key=lambda r: r.per_min)[len(runs) // 2]
    s = f.sample
    bound, formula = rate_bound(f.invoices, s.qbo_requests, s.batch_requests)
    return [
        ("runs", str(len(runs)), "median (min-max)"),
        ("invoices (created / failed)", f"{f.invoices:,} ({f.created:,} / {f.failed:,})", ""),
        ("simulated time", spread([r.sample.sim_seconds for r in runs], unit=" s"),
         f"(scale {f.scale:g}, {f.latency:g} s simulated latency per request)"),
        ("simulated invoices/min", spread([r.per_min for r in runs]), ""),
        ("ratio to QBO's physical limit", pct_spread([r.per_min / PHYSICAL_PER_MIN for r in runs]),
         f"invoices/min / {PHYSICAL_PER_MIN:,}"),
        ("rate-limit bound, invoices/min", fmt(bound), formula),
        ("QBO calls per invoice", spread([r.sample.qbo_requests / max(1, r.invoices) for r in runs], 2), ""),
        ("our CPU per invoice", spread([r.sample.own_cpu * 1000 / max(1, r.invoices) for r in runs], 3, " ms"),
         "(simulator CPU subtracted)"),
    ]


def main(argv: list[str] | None = None) -> int:
    return common.baseline_main(argv, __doc__, run_naive_bench, naive_rows, "naive one-invoice-at-a-time loop")


if __name__ == "__main__":
    sys.exit(main())
