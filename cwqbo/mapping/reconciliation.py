"""After QuickBooks answers: its TotalAmt against what ConnectWise billed, to the cent, with a reason diagnosed
from the figures alone (tax engine or line amounts), and the adjustment line that tax.on_mismatch = adjust adds."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from cwqbo import money
from cwqbo.mapping.document import QBODocument
from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.lines import ZERO, sales_line
from cwqbo.mapping.refs import Refs, ref_id
from cwqbo.settings.prefs import Prefs


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The comparison of QBO's total with CW's, and what tax.on_mismatch says to do about a difference."""

    ok: bool
    cw_total: Decimal
    qbo_total: Decimal
    difference: Decimal  # cw_total - qbo_total
    note: str
    action: Literal["none", "fail", "adjust", "warn"] = "none"


def _sales_lines_total(lines: object) -> Decimal | None:
    """Sum of the SalesItemLine amounts in a QBO `Line` array; None when there is no array."""
    if not isinstance(lines, list):
        return None
    return sum((money.to_decimal(ln.get("Amount")) for ln in lines
                if isinstance(ln, dict) and ln.get("DetailType") == "SalesItemLineDetail"), ZERO)


def reconcile(doc: QBODocument, qbo_obj: dict[str, Any], prefs: Prefs) -> Reconciliation:
    """Compare QBO's TotalAmt with what CW billed, exactly to the cent; `action` follows tax.on_mismatch.

    The reason is diagnosed from the figures alone, so the same document and the same QBO answer always get
    the same reason, whether QBO's answer is a create response or a later read or query: when QBO's line
    amounts (or, if its answer has no lines, the ones we sent) equal ours, the difference is tax — QBO's tax
    being `TxnTaxDetail.TotalTax` or, when its answer has none, its total less the lines; otherwise the lines
    themselves differ.
    """
    qbo_total = money.round_cents(money.to_decimal(qbo_obj.get("TotalAmt")))
    cw_total = money.round_cents(doc.expected_total)
    diff = cw_total - qbo_total
    if diff == 0:
        return Reconciliation(True, cw_total, qbo_total, ZERO, "totals match")
    sent_tax = (doc.payload.get("TxnTaxDetail") or {}).get("TotalTax")
    lines_sent = _sales_lines_total(doc.payload.get("Line")) or ZERO
    qbo_lines = _sales_lines_total(qbo_obj.get("Line"))
    if qbo_lines is None or qbo_lines == 0 and lines_sent != 0 and not qbo_obj.get("Line"):
        qbo_lines = lines_sent  # QBO's answer did not include its lines (a query of a few fields)
    if money.round_cents(qbo_lines) == money.round_cents(lines_sent):
        tax_detail = qbo_obj.get("TxnTaxDetail") or {}
        qbo_tax = (money.to_decimal(tax_detail["TotalTax"]) if tax_detail.get("TotalTax") is not None
                   else qbo_total - qbo_lines)
        expected_tax = cw_total - lines_sent
        why = (f"QuickBooks calculated tax {money.money_str(qbo_tax)} where ConnectWise charged "
               f"{money.money_str(expected_tax)} (tax engine" + (", pinned tax ignored)" if sent_tax is not None else ")"))
    else:
        why = (f"QuickBooks line amounts add up to {money.money_str(qbo_lines)} where cwqbo sent "
               f"{money.money_str(lines_sent)}")
    mode = prefs.tax.on_mismatch
    note = f"QuickBooks total {qbo_total} differs from ConnectWise {cw_total} by {diff}: {why}"
    return Reconciliation(False, cw_total, qbo_total, diff, note, mode)


def adjustment_line(diff: Decimal, refs: Refs, prefs: Prefs | None = None) -> dict[str, Any]:
    """A non-taxable line of `diff` on tax.adjustment_item, to add (sparse update) when on_mismatch == 'adjust'."""
    prefs = prefs or Prefs()
    name = prefs.tax.adjustment_item
    item = refs.items.get(name)
    if item is None:
        raise MappingError(f"no QuickBooks item resolved for the adjustment item '{name}'",
                           "set tax.adjustment_item to an existing item")
    if refs.us:
        code = {"value": "NON"}
    else:
        code = {"value": ref_id(refs.tax_codes, prefs.tax.exempt_code, "tax code", "set tax.exempt_code")}
    amount = money.round_cents(diff)
    return sales_line(amount, None, None, "Adjustment to match the ConnectWise total", item, code)
