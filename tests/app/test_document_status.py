"""A QuickBooks document's status in HubSpot's words (decisions.md §6)."""

from datetime import date

import pytest

from app.quickbooks.status import document_state

TODAY = date(2026, 12, 6)


def invoice(total, balance, due="2026-12-31", note=""):
    return {
        "TotalAmt": total,
        "Balance": balance,
        "DueDate": due,
        "PrivateNote": note,
        "DocNumber": "1001",
        "MetaData": {"LastUpdatedTime": "2026-12-06T10:00:00-08:00"},
    }


@pytest.mark.parametrize(
    "record, status, balance",
    [
        (invoice(450, 450), "open", "450.00"),
        (invoice(450, 450, due="2026-12-01"), "overdue", "450.00"),
        (invoice(450, 200), "partially_paid", "200.00"),
        (invoice(450, 0), "paid", "0.00"),
        (invoice(0, 0, note="Voided"), "voided", "0.00"),
        (None, "deleted", "0.00"),
        ({"status": "Deleted", "Id": "7"}, "deleted", "0.00"),
    ],
)
def test_invoice_statuses(record, status, balance):
    state = document_state("Invoice", record, TODAY)
    assert (state["status"], state["balance"]) == (status, balance)


@pytest.mark.parametrize(
    "txn_status, status",
    [
        ("Pending", "pending"),
        ("Accepted", "accepted"),
        ("Closed", "closed"),
        ("Converted", "closed"),
        ("Rejected", "rejected"),
        (None, "pending"),
    ],
)
def test_estimate_statuses(txn_status, status):
    assert document_state("Estimate", {"TotalAmt": 10, "TxnStatus": txn_status}, TODAY)["status"] == status


@pytest.mark.parametrize("entity", ["SalesReceipt", "RefundReceipt", "Purchase"])
def test_money_that_moved_is_paid_until_voided(entity):
    assert document_state(entity, {"TotalAmt": 10, "Balance": 0}, TODAY)["status"] == "paid"
    assert document_state(entity, {"TotalAmt": 0, "PrivateNote": "Voided"}, TODAY)["status"] == "voided"
