"""document_state: what a QuickBooks document's status, amount and balance are, in HubSpot's words.

Status values (decisions.md §6): invoices open, paid, partially_paid, overdue, voided, deleted; estimates
pending, accepted, closed, rejected; sales receipts, refund receipts and expenses paid, voided, deleted.
"""

from datetime import date
from decimal import Decimal

from actions.steps.lines import decimal_of
from actions.steps.lines import money as cents

ESTIMATE_STATUSES = {
    "pending": "pending",
    "accepted": "accepted",
    "closed": "closed",
    "converted": "closed",
    "rejected": "rejected",
}


def document_state(entity: str, record: dict | None, today: date | None = None) -> dict:
    """status, amount, balance, number, txn_date, currency, updated (LastUpdatedTime) of one document.

    `record` None (or QuickBooks' `{"status": "Deleted"}`) means the document was deleted in QuickBooks.
    """
    if not record or str(record.get("status", "")).lower() == "deleted":
        return {"status": "deleted", "balance": "0.00"}
    amount, balance = money(record.get("TotalAmt")), money(record.get("Balance"))
    state = {
        "amount": amount,
        "balance": balance if entity == "Invoice" else "0.00",
        "number": str(record.get("DocNumber") or ""),
        "txn_date": str(record.get("TxnDate") or ""),
        "currency": str((record.get("CurrencyRef") or {}).get("value") or ""),
        "updated": str((record.get("MetaData") or {}).get("LastUpdatedTime") or ""),
    }
    state["status"] = status_of(entity, record, today or date.today())
    return state


def status_of(entity: str, record: dict, today: date) -> str:
    if is_voided(record):
        return "voided"
    if entity == "Estimate":
        return ESTIMATE_STATUSES.get(str(record.get("TxnStatus") or "pending").lower(), "pending")
    if entity != "Invoice":
        return "paid"  # a sales receipt, refund receipt or expense records money that already moved
    total, balance = Decimal(money(record.get("TotalAmt"))), Decimal(money(record.get("Balance")))
    if balance <= 0:
        return "paid"
    if balance < total:
        return "partially_paid"
    due = str(record.get("DueDate") or "")
    return "overdue" if due and due < today.isoformat() else "open"


def is_voided(record: dict) -> bool:
    """QuickBooks keeps a voided document, zeroed, with "Voided" in its private note."""
    return "voided" in str(record.get("PrivateNote") or "").lower() and Decimal(money(record.get("TotalAmt"))) == 0


def money(value) -> str:
    """QuickBooks' amount in cents, as text (absent or unreadable: 0.00)."""
    return f"{cents(decimal_of(str(value if value is not None else '')))}"
