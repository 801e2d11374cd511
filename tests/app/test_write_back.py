"""The documents on the HubSpot record: properties created once, written for each action, refused by scopes,
retried like a callback, never delaying the callback, off by setting."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select

from app.extensions import db
from app.hubspot.properties import ensure_properties, property_definitions
from app.storage.models import Portal, QuickBooksDocument
from tests.conftest import PORTAL_ID, execution_body
from tests.scenarios import account_id, configure, seed_deal, seed_payment, seed_quote, stored_executions

GROUP = "quickbooks"


def record(portal, object_type, object_id) -> dict:
    return portal.get(object_type, object_id)["properties"]


def documents(app) -> list[QuickBooksDocument]:
    with app.app_context():
        db.session.expire_all()
        return list(db.session.scalars(select(QuickBooksDocument).order_by(QuickBooksDocument.id)))


def property_creations(fake_hubspot) -> list:
    return [r for r in fake_hubspot.requests if r.method == "POST" and "/properties/" in r.path]


def test_an_invoice_shows_on_its_deal(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)

    fields = invoice_for(deal.deal_id)

    shown = record(portal, "deals", deal.deal_id)
    assert shown["quickbooks_invoice_id"] == fields["quickbooks_document_id"]
    assert shown["quickbooks_invoice_number"] == fields["quickbooks_document_number"]
    assert shown["quickbooks_invoice_url"] == fields["quickbooks_document_url"]
    # Dated by the deal's close date (2026-11-30), due on receipt, unpaid today: overdue.
    assert (shown["quickbooks_invoice_status"], shown["quickbooks_invoice_balance"]) == ("overdue", "450.00")


def test_the_group_and_properties_are_created_once_with_labels(portal, fake_quickbooks, fake_hubspot, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    other = portal.add("deals", {"dealname": "Second", "closedate": "2026-11-30"})
    portal.associate("deals", other, "contacts", deal.contact_id)
    for line_item in deal.line_item_ids:  # copies, as HubSpot keeps line items per parent
        properties = portal.get("line_items", line_item)["properties"]
        copy = portal.add("line_items", {k: v for k, v in properties.items() if not k.startswith("hs_object")})
        portal.associate("deals", other, "line_items", copy)

    invoice_for(deal.deal_id)
    invoice_for(other)

    assert [g["name"] for g in portal.property_groups("deals") if g["name"] == GROUP] == [GROUP]
    defined = portal.properties_defined("deals")
    assert {p["name"] for p in property_definitions()} <= set(defined)
    assert all(defined[name]["label"] and defined[name]["groupName"] == GROUP for name in defined)
    assert len(property_creations(fake_hubspot)) == 2  # the group and one batch of properties, once


@pytest.mark.parametrize(
    "action, seed, object_type, inputs, kind, status",
    [
        ("create_estimate", "quote", "quotes", {}, "estimate", "pending"),
        ("create_sales_receipt", "payment", "commerce_payments", {}, "sales_receipt", "paid"),
        ("create_paid_invoice", "payment", "commerce_payments", {}, "invoice", "paid"),
        (
            "create_refund_receipt",
            "refund",
            "commerce_payments",
            {"payment_account": "Checking"},
            "refund_receipt",
            "paid",
        ),
        (
            "create_expense",
            "payment",
            "commerce_payments",
            {"payment_account": "Checking", "expense_account": "Bank Charges"},
            "expense",
            "paid",
        ),
    ],
)
def test_every_action_writes_its_kind(
    action, seed, object_type, inputs, kind, status, portal, fake_quickbooks, books, action_for
):
    hubspot_type = {"quotes": "QUOTE", "commerce_payments": "COMMERCE_PAYMENT"}[object_type]
    if seed == "quote":
        record_id = seed_quote(portal, fake_quickbooks).deal_id
        portal.associate("quotes", record_id, "contacts", portal.add("contacts", {"email": "q@acme.test"}))
    else:
        refund = {"hs_latest_status": "refunded", "hs_refunds_amount": "450"} if seed == "refund" else {}
        record_id = seed_payment(portal, fake_quickbooks, payment_properties=refund).payment_id
    inputs = {name: account_id(books, value) for name, value in inputs.items()}

    fields = action_for(action, record_id, hubspot_type, **inputs)

    assert fields["hs_execution_state"] == "SUCCESS", fields
    shown = record(portal, object_type, record_id)
    assert shown[f"quickbooks_{kind}_id"] == fields["quickbooks_document_id"]
    assert shown[f"quickbooks_{kind}_status"] == status
    assert shown[f"quickbooks_{kind}_url"] == fields["quickbooks_document_url"]
    if action == "create_paid_invoice":
        assert shown["quickbooks_payment_id"] == fields["quickbooks_payment_id"]
        assert shown["quickbooks_invoice_balance"] == "0.00"


def test_write_back_off_writes_nothing_on_the_record(app, portal, fake_quickbooks, invoice_for):
    configure(app, write_back="off")
    deal = seed_deal(portal, fake_quickbooks)

    assert invoice_for(deal.deal_id)["hs_execution_state"] == "SUCCESS"

    assert record(portal, "deals", deal.deal_id).get("quickbooks_invoice_id") is None
    assert portal.property_groups("deals") == [g for g in portal.property_groups("deals") if g["name"] != GROUP]


def test_without_the_scopes_the_document_is_made_and_the_console_warns(
    app, client, portal, fake_quickbooks, books, invoice_for
):
    with app.app_context():
        db.session.get(Portal, PORTAL_ID).scopes = ["oauth", "automation", "crm.objects.deals.read"]
        db.session.commit()
    deal = seed_deal(portal, fake_quickbooks)

    fields = invoice_for(deal.deal_id)

    assert fields["hs_execution_state"] == "SUCCESS"
    assert books.get("Invoice", fields["quickbooks_document_id"])
    assert record(portal, "deals", deal.deal_id).get("quickbooks_invoice_id") is None
    [execution] = stored_executions(app)
    assert any("did not grant crm.objects.deals.write" in note for note in execution.notes)
    with client.session_transaction() as session:
        session["portal_id"] = PORTAL_ID
    assert "did not grant crm.objects.deals.write" in client.get("/").text


def test_a_failing_write_back_is_retried_later_and_never_delays_the_callback(
    app, portal, fake_quickbooks, fake_hubspot, books, signed_post, connection, run_due_jobs
):
    deal = seed_deal(portal, fake_quickbooks)
    fake_hubspot.fail_next("PATCH /crm/objects", status=503, times=3)  # the client's quick retries too

    signed_post(
        "/hubspot/actions/create_invoice", execution_body(callback_id="ap-62515-1001-1-0", object_id=deal.deal_id)
    )

    assert fake_hubspot.completion_for("ap-62515-1001-1-0").output_fields["hs_execution_state"] == "SUCCESS"
    assert record(portal, "deals", deal.deal_id).get("quickbooks_invoice_id") is None
    [document] = documents(app)
    assert document.write_back_error.startswith("Waiting to retry") and document.written_back_at is None

    run_due_jobs()

    assert record(portal, "deals", deal.deal_id)["quickbooks_invoice_id"] == document.quickbooks_id
    [document] = documents(app)
    assert (document.write_back_error, document.write_back_attempts) == (None, 0)
    assert len(books.all("Invoice")) == 1


def test_a_payment_enrolled_again_keeps_one_document_row(portal, fake_quickbooks, app, action_for):
    payment = seed_payment(portal, fake_quickbooks)

    first = action_for("create_sales_receipt", payment.payment_id, "COMMERCE_PAYMENT")
    again = action_for("create_sales_receipt", payment.payment_id, "COMMERCE_PAYMENT")

    assert again["quickbooks_document_id"] == first["quickbooks_document_id"]
    assert len(documents(app)) == 1


def test_threads_writing_back_at_once_check_the_properties_once():
    """A billing run's first write-backs arrive together: one thread checks (and creates) the properties, the
    others wait for it instead of each asking HubSpot."""

    class SlowCrm:
        def __init__(self):
            self.calls = []

        def property_group(self, object_type, name):
            self.calls.append("group")
            time.sleep(0.2)
            return None

        def create_property_group(self, object_type, group):
            self.calls.append("create group")

        def property_names(self, object_type):
            self.calls.append("names")
            return set()

        def create_properties(self, object_type, definitions):
            self.calls.append("create properties")

    crm = SlowCrm()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: ensure_properties(crm, PORTAL_ID, "deals"), range(8)))
    assert crm.calls == ["group", "create group", "names", "create properties"]
