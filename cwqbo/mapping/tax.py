"""Tax per prefs.tax.mode: the tax code on each line (US TAX/NON, or non-US TaxCode ids), the separate tax line
of `line_item` mode, the document's TxnTaxDetail / GlobalTaxCalculation, and the total QuickBooks must reach.

Modes: `pin_cw` pins ConnectWise's tax as TotalTax (US); `qbo` lets QuickBooks' tax engine compute it (the
total is checked afterwards, see `reconciliation`); `line_item` books CW's tax as an ordinary non-taxable line.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from cwqbo import money
from cwqbo.mapping.errors import MappingError
from cwqbo.mapping.lines import ZERO, PlannedLine, credit_sign, sales_line
from cwqbo.mapping.refs import Refs, ref_id
from cwqbo.models import CWInvoice
from cwqbo.settings.prefs import Prefs


def tax_code_names(inv: CWInvoice, prefs: Prefs, plan: list[PlannedLine]) -> set[str]:
    """Non-US TaxCode names this invoice needs (static: from prefs only)."""
    tp = prefs.tax
    names: set[str] = set()
    for p in plan:
        if tp.mode == "line_item" or not p.taxable:
            names.add(tp.exempt_code)
        else:
            names.add(tp.codes.get(inv.tax_code or "", "") or tp.default_code)
    if tp.mode == "line_item" and inv.sales_tax:
        names.add(tp.exempt_code)
    if tp.on_mismatch == "adjust":
        names.add(tp.exempt_code)
    return {n for n in names if n}


def line_tax_code(taxable: bool, inv: CWInvoice, prefs: Prefs, refs: Refs, force_exempt: bool) -> dict[str, str]:
    """A line's TaxCodeRef: TAX/NON in a US company, else the mapped TaxCode's id (exempt when not taxable)."""
    tp = prefs.tax
    if refs.us:
        return {"value": "TAX" if (taxable and not force_exempt) else "NON"}
    if force_exempt or not taxable:
        if not tp.exempt_code:
            raise MappingError("a non-taxable line needs a QuickBooks tax code, and tax.exempt_code is not set",
                               "cwqbo prefs set tax.exempt_code 'Exempt' (a TaxCode name in QuickBooks)",
                               status="needs a tax code")
        name = tp.exempt_code
    else:
        cw_code = inv.tax_code or ""
        name = tp.codes.get(cw_code, "") or tp.default_code
        if not name:
            raise MappingError(f"ConnectWise tax code '{cw_code}' has no QuickBooks tax code mapped and no default",
                               f"cwqbo prefs map tax '{cw_code}' <QBO TaxCode>, or set tax.default_code",
                               status="needs a tax code")
    return {"value": ref_id(refs.tax_codes, name, "tax code", "check tax.codes / tax.default_code / tax.exempt_code")}


def document_sales_tax(inv: CWInvoice) -> Decimal:
    """ConnectWise's sales tax in cents, signed as the document (positive on a credit memo)."""
    return money.round_cents(credit_sign(inv) * inv.sales_tax)


def tax_line(inv: CWInvoice, prefs: Prefs, refs: Refs, sales_tax: Decimal) -> dict[str, Any] | None:
    """In `line_item` mode, CW's tax as a non-taxable line on tax.line_item; None in other modes or without tax."""
    if prefs.tax.mode != "line_item" or not sales_tax:
        return None
    item = refs.items.get(prefs.tax.line_item)
    if item is None:
        raise MappingError(f"no QuickBooks item resolved for the tax line item '{prefs.tax.line_item}'",
                           "set tax.line_item to an existing item")
    return sales_line(sales_tax, None, None, "Sales tax (ConnectWise)", item,
                      line_tax_code(False, inv, prefs, refs, force_exempt=True))


def document_tax(prefs: Prefs, refs: Refs, sales_tax: Decimal) -> dict[str, Any]:
    """The document's tax fields: TotalTax pinned to CW's (pin_cw) or to zero (line_item) in a US company;
    GlobalTaxCalculation = TaxExcluded elsewhere."""
    if not refs.us:
        return {"GlobalTaxCalculation": "TaxExcluded"}
    if prefs.tax.mode == "pin_cw":
        return {"TxnTaxDetail": {"TotalTax": sales_tax}}
    if prefs.tax.mode == "line_item":
        return {"TxnTaxDetail": {"TotalTax": ZERO}}
    return {}


def expected_total(inv: CWInvoice, prefs: Prefs, refs: Refs, lines_total: Decimal, sales_tax: Decimal) -> Decimal:
    """The total QuickBooks must reach. Where QuickBooks computes the tax it is CW's total (reconcile() reports
    any drift); otherwise lines + tax, which must already equal CW's total or the invoice is refused."""
    line_item_tax = prefs.tax.mode == "line_item"
    cw_total = money.round_cents(credit_sign(inv) * inv.total)
    if prefs.tax.mode == "qbo" or (not refs.us and not line_item_tax):
        return cw_total
    expected = lines_total + (ZERO if line_item_tax else sales_tax)
    if expected != cw_total:
        # ConnectWise's own figures disagree (lines + tax ≠ total): syncing would put a total in QuickBooks
        # that ConnectWise never billed, so stop here rather than reconcile against the wrong number.
        raise MappingError(
            f"ConnectWise lines and tax add up to {money.money_str(expected)} but the invoice total is "
            f"{money.money_str(cw_total)}", "correct the invoice in ConnectWise (re-open, fix, close) and sync again")
    return expected
