"""The "QuickBooks" properties on deals, quotes and payments: what they are, and creating them when missing.

Per document kind (decisions.md §6): quickbooks_<kind>_id, _number, _url, _status, _balance, plus
quickbooks_payment_id for paid invoices, in the property group "quickbooks". Created at install and, when
missing, on first use; remembered per process once seen, so a write-back costs no extra HubSpot call.
"""

import threading

GROUP = {"name": "quickbooks", "label": "QuickBooks", "displayOrder": -1}
OBJECT_TYPES = {"DEAL": "deals", "QUOTE": "quotes", "COMMERCE_PAYMENT": "commerce_payments"}
KINDS = {
    "invoice": "invoice",
    "estimate": "estimate",
    "sales_receipt": "sales receipt",
    "expense": "expense",
    "refund_receipt": "refund receipt",
}
STATUSES = {
    "estimate": ("pending", "accepted", "closed", "rejected", "voided", "deleted"),
    "invoice": ("open", "paid", "partially_paid", "overdue", "voided", "deleted"),
}
PAID_ONLY = ("paid", "voided", "deleted")  # sales receipts, refund receipts and expenses record paid money
# The scopes a portal grants for the write-back (optional at install): update records, create properties.
WRITE_SCOPES = {
    "deals": ("crm.objects.deals.write", "crm.schemas.deals.write"),
    "quotes": ("crm.objects.quotes.write", "crm.schemas.quotes.write"),
    "commerce_payments": ("crm.objects.commercepayments.write", "crm.schemas.commercepayments.write"),
}

_known: set[tuple[int, str]] = set()  # (portal, object type) whose properties exist
_known_lock = threading.Lock()
# One thread checks (and creates) a portal's properties while the others of the process wait for its answer: a
# billing run's first write-backs all arrive at once, and each check costs HubSpot requests.
_checking: dict[tuple[int, str], threading.Lock] = {}


def property_definitions() -> list[dict]:
    definitions = []
    for kind, words in KINDS.items():
        definitions += [
            text(f"quickbooks_{kind}_id", f"QuickBooks {words} ID", f"The id of the QuickBooks {words} created."),
            text(f"quickbooks_{kind}_number", f"QuickBooks {words} number", f"The QuickBooks {words}'s number."),
            text(f"quickbooks_{kind}_url", f"QuickBooks {words} link", f"Opens the {words} in QuickBooks."),
            status(kind, words),
            {
                "name": f"quickbooks_{kind}_balance",
                "label": f"QuickBooks {words} balance",
                "type": "number",
                "fieldType": "number",
                "groupName": GROUP["name"],
                "description": f"What is still owed on the QuickBooks {words}, kept current from QuickBooks.",
            },
        ]
    definitions.append(
        text(
            "quickbooks_payment_id",
            "QuickBooks payment ID",
            "The QuickBooks payment that pays the invoice (paid invoices).",
        )
    )
    return definitions


def text(name: str, label: str, description: str) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "string",
        "fieldType": "text",
        "groupName": GROUP["name"],
        "description": description,
    }


def status(kind: str, words: str) -> dict:
    values = STATUSES.get(kind, PAID_ONLY)
    return {
        "name": f"quickbooks_{kind}_status",
        "label": f"QuickBooks {words} status",
        "type": "enumeration",
        "fieldType": "select",
        "groupName": GROUP["name"],
        "description": f"The {words}'s status in QuickBooks, kept current from QuickBooks.",
        "options": [
            {"label": value.replace("_", " ").capitalize(), "value": value, "displayOrder": order, "hidden": False}
            for order, value in enumerate(values)
        ],
    }


def ensure_properties(crm, portal_id: int, object_type: str) -> None:
    """The group and every property on one object type, created when missing (HubSpotError when refused)."""
    key = (portal_id, object_type)
    with _known_lock:
        if key in _known:
            return
        checking = _checking.setdefault(key, threading.Lock())
    with checking:
        with _known_lock:
            if key in _known:  # checked by another thread meanwhile
                return
        if crm.property_group(object_type, GROUP["name"]) is None:
            crm.create_property_group(object_type, GROUP)
        existing = crm.property_names(object_type)
        missing = [p for p in property_definitions() if p["name"] not in existing]
        if missing:
            crm.create_properties(object_type, missing)
        with _known_lock:
            _known.add(key)


def forget_known() -> None:
    """Tests start from a portal that has none."""
    with _known_lock:
        _known.clear()


def missing_scopes(granted, object_type: str) -> list[str]:
    return [scope for scope in WRITE_SCOPES[object_type] if scope not in set(granted or ())]


def record_values(document) -> dict[str, str]:
    """The properties one document writes on its record (HubSpot takes every value as a string)."""
    prefix = f"quickbooks_{document.kind}"
    values = {
        f"{prefix}_id": document.quickbooks_id,
        f"{prefix}_number": document.number or "",
        f"{prefix}_url": document.url or "",
        f"{prefix}_status": document.status or "",
        f"{prefix}_balance": document.balance or "",
    }
    if document.payment_id:
        values["quickbooks_payment_id"] = document.payment_id
    return values
