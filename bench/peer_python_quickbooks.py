"""The peer: the obvious loop a user writes with python-quickbooks, on the same clock, sandbox, limits and latency.

Run:  .venv/bin/python bench/peer_python_quickbooks.py [--invoices 300] [--repeat 3] [--scale 40] [--latency 0.2]

For each Closed unsynced invoice (read from ConnectWise with cwqbo's own bulk discover, not measured): find the
customer by DisplayName (`Customer.filter`), create it if missing, then create the invoice (`Invoice.save`) with
one line per ConnectWise line on the "Services" item. python-quickbooks speaks `requests`; its session is
mounted on an adapter that calls the same metered sandbox handler as `bench/sync_throughput.py` in-process
(clock paused while a simulator runs, a fixed simulated latency per request), so the two are measured alike.
An expired access token (after a simulated hour) is re-issued and the call retried once, as a user's refresh
would. Prints invoices/min, calls per invoice and failures.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import PHYSICAL_PER_MIN, Sample, measure, pct_spread, print_table, spread  # noqa: E402

import httpx  # noqa: E402
import requests  # noqa: E402
from requests.adapters import BaseAdapter  # noqa: E402

from cwqbo.state import cache  # noqa: E402
from cwqbo.sync import discover  # noqa: E402

SERVICES_ITEM = "1"


class InProcessAdapter(BaseAdapter):
    """A requests transport adapter that answers from an httpx-style handler, without a socket."""

    def __init__(self, handle: Any) -> None:
        super().__init__()
        self._handle = handle

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None, verify: Any = True,
             cert: Any = None, proxies: Any = None) -> requests.Response:
        body = request.body.encode("utf-8") if isinstance(request.body, str) else (request.body or b"")
        answer: httpx.Response = self._handle(httpx.Request(str(request.method), str(request.url),
                                                            headers=dict(request.headers), content=body))
        resp = requests.Response()
        resp.status_code = answer.status_code
        resp._content = answer.content
        resp.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        resp.url = str(request.url)
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    def close(self) -> None:
        pass


@dataclass
class PeerFigures:
    invoices: int
    created: int
    failed: int
    customers_created: int
    sample: Sample
    scale: float
    latency: float
    reasons: dict[str, int]

    @property
    def per_min(self) -> float:
        return self.invoices / (self.sample.sim_seconds / 60) if self.sample.sim_seconds > 0 else float("inf")


class _Auth:
    """What `QuickBooks(auth_client=...)` reads from intuit-oauth's AuthClient; tokens come from the simulator."""

    environment = "production"
    client_id = "sandbox-client-id"
    refresh_token = "unused"

    def __init__(self, token: str) -> None:
        self.access_token = token


def _client(world: common.World, handle: Any) -> Any:
    from quickbooks import QuickBooks

    os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qb = QuickBooks(auth_client=_Auth(world.sandbox.qbo.issue_tokens()["access_token"]), refresh_token="unused",
                        company_id=common.sv.QBO_REALM_ID, minorversion=75, use_decimal=True)
    qb.api_url_v3 = "http://qbo.bench.invalid/v3"
    qb.sandbox = False
    qb.session.mount("http://", InProcessAdapter(handle))
    return qb


def run_peer_bench(n: int, *, scale: float, latency: float, workdir: Path, seed: int = 1) -> PeerFigures:
    from quickbooks.exceptions import AuthorizationException, QuickbooksException
    from quickbooks.objects.base import Ref
    from quickbooks.objects.customer import Customer
    from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
    from quickbooks.objects.invoice import Invoice

    for stale in workdir.glob(f"peer-{n}.db*"):
        stale.unlink()
    world = common.make_world(n, workdir / f"peer-{n}.db", scale=scale, latency=latency, seed=seed)
    handle = common.metered_handler(world.sandbox, world.meter, latency, world.clock)
    try:
        discover.refresh(world.cw, world.store, common.Filters(), clock=world.clock)
        invoices = [row.invoice() for row in cache.unsynced(world.store)]
        qb = _client(world, handle)

        def call(fn: Any) -> Any:
            try:
                return fn()
            except AuthorizationException:  # the hour-long access token expired: refresh, retry once
                token = world.sandbox.qbo.issue_tokens()["access_token"]
                qb.session.token = {"access_token": token, "token_type": "Bearer"}
                return fn()

        created = failed = customers_created = 0
        reasons: dict[str, int] = {}
        with measure(world) as sample:
            for inv in invoices:
                try:
                    name = inv.company.name or inv.company.identifier
                    found = call(lambda: Customer.filter(DisplayName=name, qb=qb))
                    if found:
                        customer = found[0]
                    else:
                        customer = Customer()
                        customer.DisplayName = name
                        customer = call(lambda: customer.save(qb=qb))
                        customers_created += 1
                    doc = Invoice()
                    doc.CustomerRef = customer.to_ref()
                    doc.DocNumber = inv.number
                    doc.TxnDate = inv.date.isoformat()
                    doc.Line = []
                    for ln in inv.lines:
                        line = SalesItemLine()
                        line.Amount = ln.amount
                        line.Description = ln.description
                        line.SalesItemLineDetail = SalesItemLineDetail()
                        line.SalesItemLineDetail.ItemRef = Ref()
                        line.SalesItemLineDetail.ItemRef.value = SERVICES_ITEM
                        line.SalesItemLineDetail.Qty = 1  # the library's default 0 x 0 is refused (6070)
                        line.SalesItemLineDetail.UnitPrice = Decimal(ln.amount)
                        doc.Line.append(line)
                    call(lambda: doc.save(qb=qb))
                    created += 1
                except QuickbooksException as exc:
                    failed += 1
                    why = str(getattr(exc, "detail", "") or exc)[:80]
                    reasons[why] = reasons.get(why, 0) + 1
        return PeerFigures(len(invoices), created, failed, customers_created, sample, scale, latency, reasons)
    finally:
        world.close()


def peer_rows(runs: list[PeerFigures]) -> list[tuple[str, str, str]]:
    f = sorted(runs, key=lambda r: r.per_min)[len(runs) // 2]
    return [
        ("runs", str(len(runs)), "median (min-max)"),
        ("invoices (created / failed)", f"{f.invoices:,} ({f.created:,} / {f.failed:,})",
         f"{f.customers_created:,} customers created on the way"),
        ("simulated time", spread([r.sample.sim_seconds for r in runs], unit=" s"),
         f"(scale {f.scale:g}, {f.latency:g} s simulated latency per request)"),
        ("simulated invoices/min", spread([r.per_min for r in runs]), ""),
        ("ratio to QBO's physical limit", pct_spread([r.per_min / PHYSICAL_PER_MIN for r in runs]),
         f"invoices/min / {PHYSICAL_PER_MIN:,}"),
        ("QBO calls per invoice", spread([r.sample.qbo_requests / max(1, r.invoices) for r in runs], 2), ""),
        ("failures", spread([float(r.failed) for r in runs], 0), "(QuickbooksException on find, create or save)"),
        *[("  failure", f"{k} x{v}", "") for k, v in sorted(f.reasons.items(), key=lambda kv: -kv[1])[:5]],
    ]


def main(argv: list[str] | None = None) -> int:
    return common.baseline_main(argv, __doc__, run_peer_bench, peer_rows, "python-quickbooks loop")


if __name__ == "__main__":
    sys.exit(main())
