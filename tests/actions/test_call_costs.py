"""What one execution of each action costs in QuickBooks and HubSpot requests, cold and warm.

Cold: a fresh QuickBooks company where nothing is remembered yet (the customer, the items, the payments
vendor and the payment method are looked up or created). Warm: a second record of the same contact and the
same products in the same company, run right after, so every remembered mapping applies.

Each count is pinned to the value measured when this file was written: a change that adds requests fails
here, and one that saves requests fails too, so the table below is updated on purpose. Run with `-s` to see
the whole table and every call:

    .venv/bin/python -m pytest -q -p no:cacheprovider tests/actions/test_call_costs.py -s

Timings are not asserted anywhere here (see `make bench`).
"""

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import pytest

from tests.scenarios import (
    DEFAULT_LINES,
    PAYMENT_PROPERTIES,
    account_id,
    add_contact,
    add_line_items,
    quickbooks_calls,
    seed_deal,
    seed_payment,
    seed_quote,
)

EMAIL = "ann.lee@acme.test"
CRM_PATHS = {"DEAL": "deals", "QUOTE": "quotes", "COMMERCE_PAYMENT": "commerce_payments"}


@dataclass
class Run:
    quickbooks: list[str]  # "METHOD /path" of the company API, as quickbooks_calls() gives them
    quickbooks_detail: list[str]  # the same, with the entity a query or batch asks about
    hubspot: list[str]  # "METHOD /path" of every HubSpot request but OAuth and callback completion


@dataclass
class Cost:
    action: str
    record: str
    cold: Run
    warm: Run
    outputs: list[dict] = field(default_factory=list)

    def counts(self) -> tuple[int, int, int, int]:
        return (len(self.cold.quickbooks), len(self.warm.quickbooks), len(self.cold.hubspot), len(self.warm.hubspot))


# (action, record type) → (QuickBooks cold, QuickBooks warm, HubSpot cold, HubSpot warm), as measured.
# Warm, a document is written with the remembered customer, items, payment method, vendor and account as they were
# remembered (QuickBooks checks every reference on the write; a refusal has them resolved again, see
# tests/actions/test_customers.py and test_products.py). Cold, every read travels in one /batch, the company's
# preferences too (then kept per company and process), and the customer (or vendor) is created.
EXPECTED = {
    ("create_invoice", "DEAL"): (3, 1, 10, 6),
    ("create_invoice", "QUOTE"): (3, 1, 10, 6),
    ("create_estimate", "DEAL"): (3, 1, 10, 6),
    ("create_estimate", "QUOTE"): (3, 1, 10, 6),
    ("create_sales_receipt", "DEAL"): (3, 1, 10, 6),
    ("create_sales_receipt", "QUOTE"): (3, 1, 10, 6),
    ("create_sales_receipt", "COMMERCE_PAYMENT"): (3, 1, 10, 6),
    ("create_paid_invoice", "COMMERCE_PAYMENT"): (4, 2, 10, 6),
    ("create_expense", "COMMERCE_PAYMENT"): (3, 1, 6, 2),
    ("create_refund_receipt", "COMMERCE_PAYMENT"): (3, 1, 10, 6),
}

# A display name is checked across customers, vendors and employees. A payment names its currency (hs_currency_code
# USD): until the preferences in the same batch tell the company's home currency, USD may be it or a foreign one, so
# the enabled currencies, and the names a customer or vendor in USD would take ("Ann Lee (USD)"), are asked along.
NAMES = "Customer, Vendor, Employee"


# Which calls those are, ids left out (compared in any order): the counts alone would miss a warm run that
# trades a remembered reference for a lookup, which could cost the same one request.
def sales_quickbooks(document: str, *, payment: bool = False, cold: bool) -> list[str]:
    if cold:
        if payment:  # the payment method's lookup joins the other reads
            # The names in the home currency and in the payment's, checked together (one query per entity).
            reads = f"Preferences, CompanyCurrency, Item, Item, Customer, PaymentMethod, {NAMES}"
        else:
            reads = f"Preferences, Item, Item, Customer, {NAMES}"
        return [f"POST /batch [{reads}]", "POST /customer", *document]
    return [*document]


def sales_hubspot(path: str) -> list[str]:
    return [
        f"GET {path}/{{id}}",
        f"GET {path}/{{id}}/associations/line_items",
        "POST line_items/batch/read",
        f"GET {path}/{{id}}/associations/contacts",
        "GET contacts/{id}",
    ]


def write_back(path: str, *, cold: bool) -> list[str]:
    """The record's QuickBooks properties: created once per portal and object type (cold), then one PATCH."""
    create = [
        f"GET /crm/properties/2026-03/{path}/groups/quickbooks",
        f"POST /crm/properties/2026-03/{path}/groups",
        f"GET /crm/properties/2026-03/{path}",
        f"POST /crm/properties/2026-03/{path}/batch/create",
    ]
    return [*(create if cold else []), f"PATCH {path}/{{id}}"]


def sales_calls(document, object_type, payment=False):
    documents = [document] if isinstance(document, str) else document
    hubspot = sales_hubspot(CRM_PATHS[object_type])
    path = CRM_PATHS[object_type]
    return (
        sales_quickbooks(documents, payment=payment, cold=True),
        sales_quickbooks(documents, payment=payment, cold=False),
        hubspot + write_back(path, cold=True),
        hubspot + write_back(path, cold=False),
    )


EXPECTED_CALLS = {
    ("create_invoice", "DEAL"): sales_calls("POST /invoice", "DEAL"),
    ("create_invoice", "QUOTE"): sales_calls("POST /invoice", "QUOTE"),
    ("create_estimate", "DEAL"): sales_calls("POST /estimate", "DEAL"),
    ("create_estimate", "QUOTE"): sales_calls("POST /estimate", "QUOTE"),
    ("create_sales_receipt", "DEAL"): sales_calls("POST /salesreceipt", "DEAL"),
    ("create_sales_receipt", "QUOTE"): sales_calls("POST /salesreceipt", "QUOTE"),
    ("create_sales_receipt", "COMMERCE_PAYMENT"): sales_calls("POST /salesreceipt", "COMMERCE_PAYMENT", payment=True),
    ("create_paid_invoice", "COMMERCE_PAYMENT"): sales_calls(
        ["POST /invoice", "POST /payment"], "COMMERCE_PAYMENT", payment=True
    ),
    ("create_expense", "COMMERCE_PAYMENT"): (
        [
            # The company's preferences (kept afterwards), the account paid from, the vendor's names.
            f"POST /batch [Preferences, CompanyCurrency, Account, {NAMES}]",
            "POST /vendor",
            "POST /purchase",
        ],
        ["POST /purchase"],
        ["GET commerce_payments/{id}", *write_back("commerce_payments", cold=True)],
        ["GET commerce_payments/{id}", *write_back("commerce_payments", cold=False)],
    ),
    ("create_refund_receipt", "COMMERCE_PAYMENT"): sales_calls("POST /refundreceipt", "COMMERCE_PAYMENT", payment=True),
}

MEASURED: dict[tuple[str, str], Cost] = {}


# -- what counts -------------------------------------------------------------------------------------------


def is_counted_hubspot_request(request) -> bool:
    """Everything the action itself asks HubSpot: not the token plumbing, not the callback completion."""
    return not request.path.startswith("/oauth") and "/callbacks" not in request.path


def hubspot_calls(fake_hubspot, since: int = 0) -> list[str]:
    requests = list(fake_hubspot.requests[since:])  # the run is over: nothing appends any more
    return [f"{r.method} {r.path}" for r in requests if is_counted_hubspot_request(r)]


def described_quickbooks_calls(fake_quickbooks) -> list[str]:
    """quickbooks_calls(), with the SQL entity of each query and the entities of each batch."""
    calls = []
    counted = iter(quickbooks_calls(fake_quickbooks))
    for request in fake_quickbooks.requests:
        if "/v3/company/" not in request.path:
            continue
        call = next(counted)
        if call.endswith("/query"):
            sql = request.query.get("query") or request.body or ""
            call += f" [{sql_entity(unquote(sql))}]"
        elif call.endswith("/batch") and isinstance(request.json, dict):
            queries = [item.get("Query", "") for item in request.json.get("BatchItemRequest", [])]
            call += f" [{', '.join(sql_entity(q) for q in queries)}]"
        calls.append(call)
    return calls


def sql_entity(sql: str) -> str:
    words = sql.split()
    upper = [w.upper() for w in words]
    return words[upper.index("FROM") + 1] if "FROM" in upper else "?"


# -- records -----------------------------------------------------------------------------------------------


def seed_first(portal, fake_quickbooks, object_type: str, refunded: bool) -> tuple[str, str]:
    """The first record (and the QuickBooks items it bills): its id and its contact's id."""
    if object_type == "DEAL":
        deal = seed_deal(portal, fake_quickbooks, email=EMAIL)
        return deal.deal_id, deal.contact_id
    if object_type == "QUOTE":
        quote = seed_quote(portal, fake_quickbooks)
        contact_id = add_contact(
            portal, quote.deal_id, object_type="quotes", email=EMAIL, firstname="Ann", lastname="Lee"
        )
        return quote.deal_id, contact_id
    payment = seed_payment(portal, fake_quickbooks, email=EMAIL)
    if refunded:
        portal.update("commerce_payments", payment.payment_id, refund_properties())
    return payment.payment_id, payment.contact_id


def seed_second(portal, object_type: str, contact_id: str, refunded: bool) -> str:
    """A second record of the same contact with the same products (seed_products runs once per test)."""
    if object_type == "DEAL":
        record_id = portal.add("deals", {"dealname": "Acme expansion", "amount": "450", "closedate": "2026-12-15"})
    elif object_type == "QUOTE":
        record_id = portal.add(
            "quotes", {"hs_title": "Acme quote 2", "hs_quote_amount": "450", "hs_quote_number": "Q-2026-18"}
        )
    else:
        record_id = portal.add(
            "commerce_payments",
            {
                **PAYMENT_PROPERTIES,
                "hs_reference_number": "HSP-9Q8W7",
                "hs_initiated_date": "2026-12-01T10:00:00Z",
                "hs_payout_date": "2026-12-03",
            },
        )
        if refunded:
            portal.update("commerce_payments", record_id, refund_properties())
    path = CRM_PATHS[object_type]
    portal.associate(path, record_id, "contacts", contact_id)
    add_line_items(portal, path, record_id, DEFAULT_LINES)
    return str(record_id)


def refund_properties() -> dict:
    return {"hs_latest_status": "refunded", "hs_refunds_amount": PAYMENT_PROPERTIES["hs_initial_amount"]}


def inputs_for(action: str, books) -> dict:
    if action in ("create_sales_receipt", "create_paid_invoice"):
        return {"deposit_account": account_id(books, "Undeposited Funds")}
    if action == "create_expense":
        return {"payment_account": account_id(books, "Checking"), "expense_account": account_id(books, "Bank Charges")}
    if action == "create_refund_receipt":
        return {"payment_account": account_id(books, "Checking")}
    return {}


def measure(action, object_type, *, portal, books, fake_quickbooks, fake_hubspot, action_for) -> Cost:
    refunded = action == "create_refund_receipt"
    inputs = inputs_for(action, books)
    first_id, contact_id = seed_first(portal, fake_quickbooks, object_type, refunded)
    second_id = seed_second(portal, object_type, contact_id, refunded)

    runs, outputs = [], []
    for record_id in (first_id, second_id):
        fake_quickbooks.reset_requests()
        since = len(fake_hubspot.requests)
        fields = action_for(action, record_id, object_type, **inputs)
        outputs.append(fields)
        runs.append(
            Run(
                quickbooks=quickbooks_calls(fake_quickbooks),
                quickbooks_detail=described_quickbooks_calls(fake_quickbooks),
                hubspot=hubspot_calls(fake_hubspot, since),
            )
        )
    return Cost(action, object_type, runs[0], runs[1], outputs)


# -- the table ---------------------------------------------------------------------------------------------


def format_table(costs) -> str:
    """The cost table as markdown, then every call of every run."""
    lines = [
        "| action | record | QuickBooks cold | QuickBooks warm | HubSpot cold | HubSpot warm |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for cost in costs:
        qc, qw, hc, hw = cost.counts()
        lines.append(f"| {cost.action} | {cost.record} | {qc} | {qw} | {hc} | {hw} |")
    for cost in costs:
        lines.append("")
        lines.append(f"{cost.action} on {cost.record}:")
        for label, run in (("cold", cost.cold), ("warm", cost.warm)):
            lines.append(f"  QuickBooks {label} ({len(run.quickbooks)}): " + "; ".join(run.quickbooks_detail))
            lines.append(f"  HubSpot {label} ({len(run.hubspot)}): " + "; ".join(short(c) for c in run.hubspot))
    return "\n".join(lines)


def short(call: str) -> str:
    return call.replace("/crm/objects/2026-03/", "").replace("/crm/associations/2026-03/", "assoc ")


def without_ids(call: str) -> str:
    return re.sub(r"/\d+(?=/|$| )", "/{id}", call)


def shapes(cost: Cost) -> tuple[list[str], ...]:
    """The calls of each run without record ids, sorted: (QuickBooks cold, warm, HubSpot cold, warm)."""
    return (
        sorted(without_ids(c) for c in cost.cold.quickbooks_detail),
        sorted(without_ids(c) for c in cost.warm.quickbooks_detail),
        sorted(without_ids(short(c)) for c in cost.cold.hubspot),
        sorted(without_ids(short(c)) for c in cost.warm.hubspot),
    )


def print_table(costs=None) -> None:
    costs = list(costs if costs is not None else MEASURED.values())
    if costs:
        print("\n\nWhat one execution costs (requests), cold and warm:\n" + format_table(costs) + "\n")


@pytest.fixture(scope="module", autouse=True)
def call_cost_table():
    """Print the table of every cost measured in this module once they all ran (shown with -s)."""
    yield
    print_table()


CASES = [
    ("create_invoice", "DEAL"),
    ("create_invoice", "QUOTE"),
    ("create_estimate", "DEAL"),
    ("create_estimate", "QUOTE"),
    ("create_sales_receipt", "DEAL"),
    ("create_sales_receipt", "QUOTE"),
    ("create_sales_receipt", "COMMERCE_PAYMENT"),
    ("create_paid_invoice", "COMMERCE_PAYMENT"),
    ("create_expense", "COMMERCE_PAYMENT"),
    ("create_refund_receipt", "COMMERCE_PAYMENT"),
]


@pytest.mark.parametrize("action, object_type", CASES)
def test_call_cost(action, object_type, portal, books, fake_quickbooks, fake_hubspot, action_for):
    cost = measure(
        action,
        object_type,
        portal=portal,
        books=books,
        fake_quickbooks=fake_quickbooks,
        fake_hubspot=fake_hubspot,
        action_for=action_for,
    )
    MEASURED[(action, object_type)] = cost
    print_table([cost])

    assert [o["hs_execution_state"] for o in cost.outputs] == ["SUCCESS", "SUCCESS"], cost.outputs
    assert cost.outputs[0]["quickbooks_document_id"] != cost.outputs[1]["quickbooks_document_id"]
    assert cost.counts() == EXPECTED[(action, object_type)], format_table([cost])
    assert shapes(cost) == tuple(sorted(calls) for calls in EXPECTED_CALLS[(action, object_type)]), format_table([cost])


def test_every_case_has_its_expected_cost():
    assert set(EXPECTED) == set(EXPECTED_CALLS) == set(CASES)
    for key, (qb_cold, qb_warm, hs_cold, hs_warm) in EXPECTED_CALLS.items():
        assert (len(qb_cold), len(qb_warm), len(hs_cold), len(hs_warm)) == EXPECTED[key], key
