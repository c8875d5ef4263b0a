"""Which cached invoices a run sends: every unsynced one, or the numbers the user named (with why not, if not).

Also the small adapters from the local cache to CWInvoice that the other stages read through.
"""

from __future__ import annotations

from cwqbo.state import cache
from cwqbo.state import ledger
from cwqbo.errors import UsageError
from cwqbo.models import CWInvoice
from cwqbo.sync.run_state import RunState
from cwqbo.state.store import Store
from cwqbo.sync.model import ItemResult


def select(run: RunState, handled: set[int]) -> tuple[list[int], list[ItemResult]]:
    """The ids this run sends (decoded slice by slice: `load`), and the named invoices it won't send, with why."""
    store = run.deps.store
    if run.options.selection == "all":
        return [i for i in cache.unsynced_ids(store) if i not in handled], []
    invoices: list[int] = []
    skipped: list[ItemResult] = []
    seen: set[int] = set()
    for number in run.options.invoice_numbers:
        rows = store.db.execute("select cw_id, closed, status_name, in_scope, unposted from invoices "
                                "where number = ?", [number]).fetchall()
        if not rows:
            raise UsageError(f"invoice {number} is not among the Closed invoices cwqbo knows",
                             hint="check the number, or run `cwqbo list-unsynced` to refresh and see them")
        cw_id, closed, status_name, _in_scope, _unposted = rows[0]
        if not closed:
            raise UsageError(f"invoice {number} is not Closed in ConnectWise (status: {status_name})",
                             hint="close it in ConnectWise first; only Closed invoices are synced")
        if cw_id in seen or cw_id in handled:
            continue
        seen.add(cw_id)
        inv = cached_invoice(store, cw_id)
        if inv is None:  # pragma: no cover - row exists but data unreadable
            raise UsageError(f"invoice {number} is in the cache without its detail; refresh and retry")
        row = ledger.get(store, cw_id)
        if (row is not None and row.state in ("created", "batched") and row.content_hash is not None
                and row.content_hash != _cached_hash(store, cw_id)):
            continue  # edited in CW since it was synced: `changed` reports it (or updates it with --update)
        if row is not None and row.state in ("created", "batched"):
            skipped.append(run.result(inv, "skipped", qbo_id=row.qbo_id, entity=row.entity,
                                      error=f"already in QuickBooks ({row.entity} {row.qbo_id})"))
            continue
        if not _unposted:
            skipped.append(run.result(inv, "skipped", error="already exported in a ConnectWise accounting "
                                                            "batch (not by cwqbo); not sent again"))
            continue
        invoices.append(inv.id)
    return invoices, skipped


def load(store: Store, cw_ids: list[int]) -> list[tuple[CWInvoice, str]]:
    """The invoices to send, each with its content hash as the cache holds it."""
    return cache.load_with_hashes(store, cw_ids)


def changed(run: RunState, handled: set[int]) -> list[CWInvoice]:
    """Synced invoices edited in CW since (only the named ones with --invoice), except those already handled."""
    named = set(run.options.invoice_numbers) if run.options.selection == "invoices" else None
    return [i for i in changed_invoices(run.deps.store)
            if i.id not in handled and (named is None or i.number in named)]


# --- cache adapters -----------------------------------------------------------------------------------

def cached_invoice(store: Store, cw_id: int) -> CWInvoice | None:
    found = cache.find(store, cw_id)
    return found.invoice() if found is not None else None


def _cached_hash(store: Store, cw_id: int) -> str | None:
    found = cache.find(store, cw_id)
    return found.content_hash if found is not None else None


def changed_invoices(store: Store) -> list[CWInvoice]:
    return [c.cached.invoice() for c in cache.changed(store)]


def still_closed(store: Store, cw_id: int) -> bool:
    """Still Closed per the cache: off the unposted list because someone exported it, not re-opened."""
    found = cache.find(store, cw_id)
    return found is not None and bool(found.closed)
