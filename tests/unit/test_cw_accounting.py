"""The GL export check: only an export that holds exactly our invoices, with our totals, may be batched."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cwqbo.connectwise.accounting import (Expected, UnpostedRow, check_export, export_invoice_id,
                                          parse_gl_entry_ids, unposted_row)

OURS = [Expected(101, "INV-101", Decimal("299.75")), Expected(102, "INV-102", Decimal("-40.00"))]


def tx(number: str, total: str, gl: str) -> dict[str, object]:
    return {"id": 9, "documentNumber": number, "documentType": "Invoice", "total": Decimal(total), "glEntryIds": gl}


def test_an_export_of_exactly_our_invoices_gives_each_its_gl_entries() -> None:
    check = check_export({"transactions": [tx("INV-101", "299.75", "880001,880002, 880003"),
                                           tx("INV-102", "-40.00", "880004,880005")]}, OURS)
    assert check.ok and not check.missing
    assert check.gl_ids == {101: [880001, 880002, 880003], 102: [880004, 880005]}
    assert check.all_gl_ids() == [880001, 880002, 880003, 880004, 880005]


def test_a_document_we_did_not_ask_for_forbids_the_batch() -> None:
    """What a wrong guess about includedInvoiceIds looks like: someone else's invoice in the export."""
    check = check_export({"transactions": [tx("INV-101", "299.75", "1,2"), tx("INV-777", "10.00", "3")]}, OURS)
    assert not check.ok
    assert any("INV-777" in p and "did not ask for" in p for p in check.problems)


@pytest.mark.parametrize("key", ["expenses", "purchaseTransactions", "adjustmentTransactions"])
def test_other_tools_documents_in_the_export_forbid_the_batch(key: str) -> None:
    check = check_export({"transactions": [tx("INV-101", "299.75", "1,2")], key: [{"documentNumber": "E1"}]}, OURS)
    assert not check.ok and any(key in p for p in check.problems)


def test_a_total_that_differs_by_a_cent_forbids_the_batch() -> None:
    check = check_export({"transactions": [tx("INV-101", "299.74", "1,2")]}, OURS)
    assert not check.ok and "299.74" in check.problems[0] and "299.75" in check.problems[0]


def test_duplicates_and_shared_or_malformed_gl_ids_forbid_the_batch() -> None:
    assert not check_export({"transactions": [tx("INV-101", "299.75", "1"), tx("INV-101", "299.75", "2")]},
                            OURS).ok
    assert not check_export({"transactions": [tx("INV-101", "299.75", "1,2"), tx("INV-102", "-40.00", "2")]},
                            OURS).ok
    assert not check_export({"transactions": [tx("INV-101", "299.75", "1,x")]}, OURS).ok
    assert not check_export({"transactions": [tx("INV-101", "299.75", "")]}, OURS).ok
    assert not check_export(["not", "an", "object"], OURS).ok


def test_an_invoice_missing_from_the_export_is_reported_and_the_rest_may_go() -> None:
    check = check_export({"transactions": [tx("INV-101", "299.75", "7,8")]}, OURS)
    assert check.ok and check.gl_ids == {101: [7, 8]}
    assert [e.number for e in check.missing] == ["INV-102"]


def test_an_export_of_none_of_several_invoices_is_a_problem_not_a_list_of_missing_gl_entries() -> None:
    check = check_export({"transactions": []}, OURS)
    assert not check.ok and len(check.missing) == 2
    assert "includedInvoiceIds" in check.problems[0]
    single = check_export({"transactions": []}, OURS[:1])
    assert not single.problems and [e.number for e in single.missing] == ["INV-101"]


def test_unposted_rows_link_by_billing_log_id_and_keep_their_own_id() -> None:
    row = unposted_row({"id": 700101, "billingLogId": 101, "invoiceNumber": "INV-101"})
    assert row == UnpostedRow(row_id=700101, invoice_id=101, number="INV-101")
    assert export_invoice_id(row) == 700101
    assert unposted_row({"id": 5}) is None and unposted_row({"billingLogId": 5}) is None


def test_gl_entry_ids_are_a_comma_separated_string() -> None:
    assert parse_gl_entry_ids("12, 13,14") == [12, 13, 14]
    with pytest.raises(ValueError):
        parse_gl_entry_ids(12)
    with pytest.raises(ValueError):
        parse_gl_entry_ids("12;13")
