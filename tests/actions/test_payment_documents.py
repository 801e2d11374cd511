"""Documents made from a HubSpot payment: a paid invoice (Invoice + Payment) and a refund receipt.

End to end through the signed endpoint against the fakes: which payments qualify, what QuickBooks receives,
resuming after lost or failed writes, and one document per (payment, action) across enrollments (also checked
straight on the claims table).
"""

import re
from datetime import timedelta

import pytest

from app import worker
from app.extensions import db
from app.storage.models import DocumentClaim, Execution, utcnow
from tests.conftest import PORTAL_ID, REALM_ID, execution_body
from tests.scenarios import (
    DEFAULT_LINES,
    PAYMENT_PROPERTIES,
    account_id,
    add_line_items,
    configure,
    quickbooks_calls,
    seed_payment,
    stored_executions,
)

PAID_INVOICE = "create_paid_invoice"
REFUND_RECEIPT = "create_refund_receipt"
PAYMENT = "COMMERCE_PAYMENT"
APP_URL = "https://app.sandbox.qbo.intuit.com/app"
PAID_INVOICE_OUTPUTS = {
    "quickbooks_document_id",
    "quickbooks_document_number",
    "quickbooks_document_url",
    "quickbooks_customer_id",
    "quickbooks_payment_id",
    "error_code",
    "error_message",
    "hs_execution_state",
}
REFUNDED = {"hs_latest_status": "refunded", "hs_refunds_amount": "450"}


# -- helpers -------------------------------------------------------------------------------------------------


def paid_invoice(action_for, payment_id, **inputs) -> dict:
    return action_for(PAID_INVOICE, payment_id, PAYMENT, **inputs)


def refund_receipt(action_for, payment_id, **inputs) -> dict:
    return action_for(REFUND_RECEIPT, payment_id, PAYMENT, **inputs)


def succeeded(fields) -> dict:
    assert fields["hs_execution_state"] == "SUCCESS", fields
    assert (fields["error_code"], fields["error_message"]) == ("", "")
    assert all(isinstance(value, str) for value in fields.values()), fields
    return fields


def failed(fields, code) -> str:
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", code), fields
    assert fields["error_message"]
    assert all(isinstance(value, str) for value in fields.values()), fields
    return fields["error_message"]


def writes(fake_quickbooks) -> list[str]:
    """The QuickBooks requests that create something (queries travel as POST /query and POST /batch)."""
    return [
        call
        for call in quickbooks_calls(fake_quickbooks)
        if call.startswith("POST") and not call.startswith(("POST /query", "POST /batch"))
    ]


def item_lines(document) -> list[dict]:
    return [line for line in document["Line"] if line["DetailType"] == "SalesItemLineDetail"]


def item_ids(document) -> list[str]:
    return [line["SalesItemLineDetail"]["ItemRef"]["value"] for line in item_lines(document)]


def method_id(books, name) -> str:
    return str(books.find("PaymentMethod", Name=name)["Id"])


def request_ids(fake_quickbooks, path) -> list[str]:
    return [request.query.get("requestid") for request in fake_quickbooks.requests_to("POST", path)]


def assert_nothing_written(books, fake_quickbooks, items_before):
    assert books.all("Invoice") == []
    assert books.all("Payment") == []
    assert books.all("RefundReceipt") == []
    assert books.all("Customer") == []
    assert sorted(item["Id"] for item in books.all("Item")) == items_before
    assert writes(fake_quickbooks) == []


def item_ids_of(books) -> list[str]:
    return sorted(item["Id"] for item in books.all("Item"))


def add_bare_payment(portal, properties=None, lines=DEFAULT_LINES, email="bo.bell@acme.test") -> str:
    """A second payment in a test that already called seed_payment (whose products exist once)."""
    payment_id = portal.add(
        "commerce_payments", {**PAYMENT_PROPERTIES, "hs_customer_email": email, **(properties or {})}
    )
    contact_id = portal.add("contacts", {"email": email, "firstname": "Bo", "lastname": "Bell"})
    portal.associate("commerce_payments", payment_id, "contacts", contact_id)
    add_line_items(portal, "commerce_payments", payment_id, lines)
    return str(payment_id)


# -- create_paid_invoice: the happy path ---------------------------------------------------------------------


def test_paid_invoice_writes_an_invoice_and_a_payment_applied_to_it(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    [invoice] = books.all("Invoice")
    [qbo_payment] = books.all("Payment")
    assert fields["quickbooks_document_id"] == invoice["Id"]
    assert fields["quickbooks_payment_id"] == qbo_payment["Id"]
    assert qbo_payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert float(qbo_payment["TotalAmt"]) == 450.0
    assert float(qbo_payment["Line"][0]["Amount"]) == 450.0
    assert qbo_payment["CustomerRef"]["value"] == invoice["CustomerRef"]["value"] == fields["quickbooks_customer_id"]


def test_paid_invoice_ends_with_a_zero_balance(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    assert float(invoice["TotalAmt"]) == 450.0
    assert float(invoice["Balance"]) == 0.0


def test_paid_invoice_lines_are_the_payments_line_items(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    assert item_ids(invoice) == [payment.widget_id, payment.service_id]
    assert [float(line["Amount"]) for line in item_lines(invoice)] == [200.0, 250.0]


def test_paid_invoice_outputs_are_strings_with_the_invoice_link_and_number(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    assert set(fields) == PAID_INVOICE_OUTPUTS
    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    assert fields["quickbooks_document_number"] == invoice["DocNumber"]
    assert fields["quickbooks_document_url"] == f"{APP_URL}/invoice?txnId={invoice['Id']}"


def test_paid_invoice_payment_carries_method_reference_and_date(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)  # card, HSP-7F3K2, initiated 2026-11-28T15:04:05Z

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    qbo_payment = books.get("Payment", fields["quickbooks_payment_id"])
    assert qbo_payment["PaymentMethodRef"]["value"] == method_id(books, "Credit Card")
    assert qbo_payment["PaymentRefNum"] == "HSP-7F3K2"
    assert qbo_payment["TxnDate"] == "2026-11-28"
    assert books.get("Invoice", fields["quickbooks_document_id"])["TxnDate"] == "2026-11-28"


def test_paid_invoice_is_deposited_to_undeposited_funds_by_default(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    deposit = books.get("Payment", fields["quickbooks_payment_id"])["DepositToAccountRef"]["value"]
    assert deposit == account_id(books, "Undeposited Funds")


def test_paid_invoice_is_deposited_to_the_chosen_account(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)
    checking = account_id(books, "Checking")

    fields = succeeded(paid_invoice(action_for, payment.payment_id, deposit_account=checking))

    assert books.get("Payment", fields["quickbooks_payment_id"])["DepositToAccountRef"]["value"] == checking


def test_paid_invoice_writes_invoice_and_payment_with_their_own_request_ids(portal, fake_quickbooks, action_for):
    payment = seed_payment(portal, fake_quickbooks)

    succeeded(paid_invoice(action_for, payment.payment_id))

    [invoice_request_id] = request_ids(fake_quickbooks, "/invoice")
    [payment_request_id] = request_ids(fake_quickbooks, "/payment")
    assert invoice_request_id and payment_request_id
    assert invoice_request_id != payment_request_id


# -- create_paid_invoice: which payments qualify -------------------------------------------------------------


@pytest.mark.parametrize(
    "tax",
    [
        {"hs_tax_rate_group_id": "tg-1"},
        {"hs_tax_rate": "8.25"},
        {"hs_tax_amount": "16.50"},
    ],
)
def test_a_taxed_line_is_taxable_lines_not_allowed_and_nothing_is_written(
    portal, fake_quickbooks, books, action_for, tax
):
    lines = [{**DEFAULT_LINES[0], **tax}, DEFAULT_LINES[1]]
    payment = seed_payment(portal, fake_quickbooks, lines=lines)
    items_before = item_ids_of(books)

    message = failed(paid_invoice(action_for, payment.payment_id), "TAXABLE_LINES_NOT_ALLOWED")

    assert "Widget" in message
    assert "setup SERVICE" not in message
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_taxable_lines_not_allowed_names_every_taxed_line(portal, fake_quickbooks, books, action_for):
    lines = [
        {**DEFAULT_LINES[0], "hs_tax_rate_group_id": "tg-1"},
        {**DEFAULT_LINES[1], "hs_tax_amount": "20.63"},
        {"name": "Free manual", "quantity": "1", "price": "0", "amount": "0"},
    ]
    payment = seed_payment(portal, fake_quickbooks, lines=lines)

    message = failed(paid_invoice(action_for, payment.payment_id), "TAXABLE_LINES_NOT_ALLOWED")

    assert "Widget" in message and "setup SERVICE" in message
    assert "Free manual" not in message


def test_taxed_line_of_a_missing_product_creates_no_product(portal, fake_quickbooks, books, action_for):
    """Product creation is on, and the taxed line's product is missing: still nothing is written."""
    lines = [{"name": "Gizmo", "quantity": "1", "price": "450", "amount": "450", "hs_tax_rate": "5"}]
    payment = seed_payment(portal, fake_quickbooks, lines=lines)
    items_before = item_ids_of(books)

    failed(paid_invoice(action_for, payment.payment_id, create_missing_products="true"), "TAXABLE_LINES_NOT_ALLOWED")

    assert books.find("Item", Name="Gizmo") is None
    assert_nothing_written(books, fake_quickbooks, items_before)


@pytest.mark.parametrize("zero_tax", [{"hs_tax_rate": "0"}, {"hs_tax_amount": "0.00"}, {"hs_tax_rate_group_id": ""}])
def test_zero_or_empty_tax_properties_are_not_taxed(portal, fake_quickbooks, books, action_for, zero_tax):
    lines = [{**DEFAULT_LINES[0], **zero_tax}, DEFAULT_LINES[1]]
    payment = seed_payment(portal, fake_quickbooks, lines=lines)

    succeeded(paid_invoice(action_for, payment.payment_id))

    assert len(books.all("Invoice")) == 1


def test_amount_differing_from_the_lines_is_payment_amount_mismatch(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties={"hs_initial_amount": "437.50"})
    items_before = item_ids_of(books)

    message = failed(paid_invoice(action_for, payment.payment_id), "PAYMENT_AMOUNT_MISMATCH")

    assert "437.5" in message
    assert "450" in message
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_payment_amount_mismatch_writes_no_missing_product(portal, fake_quickbooks, books, action_for):
    lines = [{"name": "Gizmo", "quantity": "1", "price": "300", "amount": "300"}]
    payment = seed_payment(portal, fake_quickbooks, lines=lines)  # paid 450
    items_before = item_ids_of(books)

    failed(paid_invoice(action_for, payment.payment_id, create_missing_products="true"), "PAYMENT_AMOUNT_MISMATCH")

    assert_nothing_written(books, fake_quickbooks, items_before)


def test_payment_of_a_hubspot_invoice_is_payment_from_invoice(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties={"hs_payment_source_app": "INVOICE"})
    items_before = item_ids_of(books)

    message = failed(paid_invoice(action_for, payment.payment_id), "PAYMENT_FROM_INVOICE")

    assert f"payment {payment.payment_id}" in message
    assert "allow_invoice_payments" in message
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_payment_of_a_hubspot_invoice_is_recorded_when_allowed(app, portal, fake_quickbooks, books, action_for):
    configure(app, allow_invoice_payments="on")
    payment = seed_payment(portal, fake_quickbooks, payment_properties={"hs_payment_source_app": "INVOICE"})

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    assert [invoice["Id"] for invoice in books.all("Invoice")] == [fields["quickbooks_document_id"]]
    assert [p["Id"] for p in books.all("Payment")] == [fields["quickbooks_payment_id"]]


# -- create_paid_invoice: payments without line items or contact -------------------------------------------


def test_payment_without_line_items_gets_one_line_for_its_amount_with_the_chosen_product(
    portal, fake_quickbooks, books, action_for
):
    payment = seed_payment(portal, fake_quickbooks, lines=[])

    fields = succeeded(paid_invoice(action_for, payment.payment_id, products=payment.service_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    [line] = item_lines(invoice)
    assert line["SalesItemLineDetail"]["ItemRef"]["value"] == payment.service_id
    assert float(line["Amount"]) == 450.0
    assert float(invoice["Balance"]) == 0.0
    assert float(books.get("Payment", fields["quickbooks_payment_id"])["TotalAmt"]) == 450.0


def test_payment_without_line_items_and_no_product_chosen_is_no_line_items(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, lines=[])
    items_before = item_ids_of(books)

    message = failed(paid_invoice(action_for, payment.payment_id, products="line_items"), "NO_LINE_ITEMS")

    assert re.search(r"choose a (QuickBooks )?product", message, re.IGNORECASE)
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_payment_without_contact_bills_its_customer_email(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, contact=False, email="zoe.ray@example.test")

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    [customer] = books.all("Customer")
    assert customer["Id"] == fields["quickbooks_customer_id"]
    assert customer["PrimaryEmailAddr"]["Address"] == "zoe.ray@example.test"
    assert books.get("Invoice", fields["quickbooks_document_id"])["BillEmail"]["Address"] == "zoe.ray@example.test"


def test_payment_without_contact_matches_the_customer_with_that_email(portal, fake_quickbooks, books, action_for):
    existing = books.add_customer(DisplayName="Zoe Ray", PrimaryEmailAddr="zoe.ray@example.test")
    payment = seed_payment(portal, fake_quickbooks, contact=False, email="zoe.ray@example.test")

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    assert fields["quickbooks_customer_id"] == existing["Id"]
    assert len(books.all("Customer")) == 1
    assert "POST /customer" not in writes(fake_quickbooks)


# -- create_paid_invoice: retries resume, never a second invoice or payment --------------------------------


@pytest.mark.parametrize("write", ["/invoice", "/payment"])
def test_lost_response_on_either_write_yields_one_invoice_and_one_payment(
    portal, fake_quickbooks, books, action_for, write
):
    payment = seed_payment(portal, fake_quickbooks)
    fake_quickbooks.fail_next(f"POST {write}", 503, commit=True)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    [invoice] = books.all("Invoice")
    [qbo_payment] = books.all("Payment")
    assert (fields["quickbooks_document_id"], fields["quickbooks_payment_id"]) == (invoice["Id"], qbo_payment["Id"])
    assert qbo_payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert len(set(request_ids(fake_quickbooks, write))) == 1  # the retry reused the request id
    assert len(request_ids(fake_quickbooks, write)) == 2


@pytest.mark.parametrize("write", ["/invoice", "/payment"])
def test_quickbooks_down_on_either_write_resumes_on_the_next_run(
    app, portal, connection, fake_quickbooks, fake_hubspot, books, signed_post, run_due_jobs, write
):
    """The first run's inline retries all get 503 after a write landed; the rescheduled run finishes the job."""
    payment = seed_payment(portal, fake_quickbooks)
    fake_quickbooks.fail_next(f"POST {write}", 503, commit=True, times=3)
    callback_id = f"ap-{PORTAL_ID}-1001-1-0"

    signed_post(
        f"/hubspot/actions/{PAID_INVOICE}",
        execution_body(callback_id=callback_id, object_id=payment.payment_id, object_type=PAYMENT),
    )
    assert fake_hubspot.completion_for(callback_id) is None  # postponed
    run_due_jobs()

    fields = succeeded(fake_hubspot.completion_for(callback_id).output_fields)
    [invoice] = books.all("Invoice")
    [qbo_payment] = books.all("Payment")
    assert (fields["quickbooks_document_id"], fields["quickbooks_payment_id"]) == (invoice["Id"], qbo_payment["Id"])
    assert float(invoice["Balance"]) == 0.0
    assert len(set(request_ids(fake_quickbooks, "/invoice"))) == 1
    assert len(set(request_ids(fake_quickbooks, "/payment"))) == 1


def test_rejected_payment_fails_and_keeps_the_invoice(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)
    fake_quickbooks.fail_next(
        "POST /payment",
        400,
        code=6000,
        message="A business validation error has occurred",
        detail="Business Validation Error: deposit account closed",
    )

    message = failed(paid_invoice(action_for, payment.payment_id), "QUICKBOOKS_VALIDATION")

    assert "deposit account closed" in message
    [invoice] = books.all("Invoice")
    assert float(invoice["Balance"]) == 450.0
    assert books.all("Payment") == []


def test_enrolling_again_after_a_rejected_payment_writes_only_the_payment_to_the_same_invoice(
    app, portal, fake_quickbooks, books, action_for
):
    payment = seed_payment(portal, fake_quickbooks)
    fake_quickbooks.fail_next("POST /payment", 400, code=6000, message="A business validation error has occurred")
    failed(paid_invoice(action_for, payment.payment_id), "QUICKBOOKS_VALIDATION")
    [invoice] = books.all("Invoice")
    fake_quickbooks.reset_requests()

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    assert writes(fake_quickbooks) == ["POST /payment"]
    assert [i["Id"] for i in books.all("Invoice")] == [invoice["Id"]]
    [qbo_payment] = books.all("Payment")
    assert fields["quickbooks_document_id"] == invoice["Id"]
    assert fields["quickbooks_payment_id"] == qbo_payment["Id"]
    assert qbo_payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert float(books.get("Invoice", invoice["Id"])["Balance"]) == 0.0


# -- one document per (payment, action) ----------------------------------------------------------------------


def test_payment_enrolled_again_answers_with_its_document_and_writes_nothing(
    portal, fake_quickbooks, books, action_for
):
    payment = seed_payment(portal, fake_quickbooks)
    first = succeeded(paid_invoice(action_for, payment.payment_id))
    fake_quickbooks.reset_requests()

    again = succeeded(paid_invoice(action_for, payment.payment_id))

    assert again == first
    assert again["quickbooks_payment_id"] == first["quickbooks_payment_id"]
    assert writes(fake_quickbooks) == []
    assert len(books.all("Invoice")) == 1 and len(books.all("Payment")) == 1


def test_enrolling_again_records_a_second_execution(app, portal, fake_quickbooks, action_for):
    payment = seed_payment(portal, fake_quickbooks)
    paid_invoice(action_for, payment.payment_id)

    paid_invoice(action_for, payment.payment_id)

    first, second = stored_executions(app)
    assert first.callback_id != second.callback_id
    assert second.outputs["quickbooks_document_id"] == first.outputs["quickbooks_document_id"]
    assert any("already has its QuickBooks document" in note for note in second.notes)


def test_another_payment_gets_its_own_paid_invoice(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks)
    other_id = add_bare_payment(portal)
    first = succeeded(paid_invoice(action_for, payment.payment_id))

    other = succeeded(paid_invoice(action_for, other_id))

    assert other["quickbooks_document_id"] != first["quickbooks_document_id"]
    assert other["quickbooks_payment_id"] != first["quickbooks_payment_id"]
    assert len(books.all("Invoice")) == 2 and len(books.all("Payment")) == 2


def test_the_same_payment_in_another_action_is_independent(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED)
    invoice_fields = succeeded(paid_invoice(action_for, payment.payment_id))

    refund = succeeded(refund_receipt(action_for, payment.payment_id, payment_account=account_id(books, "Checking")))

    [receipt] = books.all("RefundReceipt")
    assert refund["quickbooks_document_id"] == receipt["Id"]
    assert succeeded(paid_invoice(action_for, payment.payment_id)) == invoice_fields
    assert len(books.all("Invoice")) == 1


def test_a_second_execution_waits_for_the_running_one_then_answers_with_its_document(
    app, portal, connection, fake_quickbooks, fake_hubspot, books, signed_post, run_due_jobs
):
    payment = seed_payment(portal, fake_quickbooks)
    running = insert_running_execution_holding_the_claim(app, payment.payment_id, "ap-62515-1001-9-0")
    second_callback = "ap-62515-1001-9-1"

    signed_post(
        f"/hubspot/actions/{PAID_INVOICE}",
        execution_body(callback_id=second_callback, object_id=payment.payment_id, object_type=PAYMENT),
    )

    assert fake_hubspot.completion_for(second_callback) is None  # postponed, not answered
    assert writes(fake_quickbooks) == []
    second = stored_executions(app)[-1]
    assert (second.status, second.outcome) == ("pending", None)

    finish_running_execution(app, running)  # the first one finishes its writes
    first = succeeded(fake_hubspot.completion_for("ap-62515-1001-9-0").output_fields)
    run_due_jobs()

    answered = succeeded(fake_hubspot.completion_for(second_callback).output_fields)
    assert answered == first
    assert len(books.all("Invoice")) == 1 and len(books.all("Payment")) == 1
    assert len(fake_quickbooks.requests_to("POST", "/invoice")) == 1


def insert_running_execution_holding_the_claim(app, payment_id, callback_id) -> int:
    """An execution of the same payment and action that a worker is running right now."""
    with app.app_context():
        execution = Execution(
            portal_id=PORTAL_ID,
            callback_id=callback_id,
            action=PAID_INVOICE,
            object_type=PAYMENT,
            object_id=str(payment_id),
            origin={},
            status=Execution.RUNNING,
            attempts=1,
            inputs={
                "customer": "first_associated_contact",
                "products": "line_items",
                "create_missing_products": "false",
            },
            lease_until=utcnow() + timedelta(minutes=10),
            expires_at=utcnow() + timedelta(days=6),
        )
        db.session.add(execution)
        db.session.commit()
        db.session.add(
            DocumentClaim(
                portal_id=PORTAL_ID,
                realm_id=REALM_ID,
                action=PAID_INVOICE,
                object_type=PAYMENT,
                object_id=str(payment_id),
                execution_id=execution.id,
            )
        )
        db.session.commit()
        return execution.id


def finish_running_execution(app, execution_id):
    """Let the running execution do its work now (as its worker would have), to the callback."""
    with app.app_context():
        execution = db.session.get(Execution, execution_id)
        execution.status, execution.lease_until = Execution.PENDING, None
        db.session.commit()
        worker.run_execution(execution_id)


# Claims at the storage level, on both back ends and under races: tests/app/test_claims.py.


# -- create_refund_receipt -----------------------------------------------------------------------------------


def test_fully_refunded_payment_gets_a_refund_receipt(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED)
    checking = account_id(books, "Checking")

    fields = succeeded(refund_receipt(action_for, payment.payment_id, payment_account=checking))

    [receipt] = books.all("RefundReceipt")
    assert fields["quickbooks_document_id"] == receipt["Id"]
    assert item_ids(receipt) == [payment.widget_id, payment.service_id]
    assert float(receipt["TotalAmt"]) == 450.0
    assert receipt["DepositToAccountRef"]["value"] == checking
    assert receipt["PaymentMethodRef"]["value"] == method_id(books, "Credit Card")
    assert receipt["CustomerRef"]["value"] == fields["quickbooks_customer_id"]


def test_refund_receipt_outputs_link_to_the_refund_receipt(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED)

    fields = succeeded(refund_receipt(action_for, payment.payment_id, payment_account=account_id(books, "Checking")))

    assert set(fields) == PAID_INVOICE_OUTPUTS - {"quickbooks_payment_id"}
    receipt_id = books.all("RefundReceipt")[0]["Id"]
    assert fields["quickbooks_document_url"] == f"{APP_URL}/refundreceipt?txnId={receipt_id}"
    assert fields["quickbooks_document_number"] == books.get("RefundReceipt", receipt_id)["DocNumber"]


def test_refund_from_a_credit_card_account(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED)
    mastercard = account_id(books, "Mastercard")

    fields = succeeded(refund_receipt(action_for, payment.payment_id, payment_account=mastercard))

    assert books.get("RefundReceipt", fields["quickbooks_document_id"])["DepositToAccountRef"]["value"] == mastercard


@pytest.mark.parametrize(
    "status, refunded",
    [
        ("partially_refunded", "200"),
        ("refunded", "200"),
        ("succeeded", "0"),
    ],
)
def test_payment_not_fully_refunded_is_not_fully_refunded(portal, fake_quickbooks, books, action_for, status, refunded):
    payment = seed_payment(
        portal, fake_quickbooks, payment_properties={"hs_latest_status": status, "hs_refunds_amount": refunded}
    )
    items_before = item_ids_of(books)

    message = failed(
        refund_receipt(action_for, payment.payment_id, payment_account=account_id(books, "Checking")),
        "NOT_FULLY_REFUNDED",
    )

    assert status in message
    assert refunded in message and "450" in message
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_refund_without_refund_from_account_is_invalid_input(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED)
    items_before = item_ids_of(books)

    message = failed(refund_receipt(action_for, payment.payment_id, payment_account=""), "INVALID_INPUT")

    assert "Refund from" in message
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_refund_with_a_line_without_product_is_product_not_found(portal, fake_quickbooks, books, action_for):
    lines = [DEFAULT_LINES[0], {"name": "Gizmo", "quantity": "1", "price": "250", "amount": "250"}]
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED, lines=lines)
    items_before = item_ids_of(books)

    message = failed(
        refund_receipt(action_for, payment.payment_id, payment_account=account_id(books, "Checking")),
        "PRODUCT_NOT_FOUND",
    )

    assert "Gizmo" in message
    assert "Widget" not in message
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_refund_of_a_payment_without_line_items_uses_the_chosen_product(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED, lines=[])

    fields = succeeded(
        refund_receipt(
            action_for, payment.payment_id, payment_account=account_id(books, "Checking"), products=payment.widget_id
        )
    )

    receipt = books.get("RefundReceipt", fields["quickbooks_document_id"])
    assert item_ids(receipt) == [payment.widget_id]
    assert float(receipt["TotalAmt"]) == 450.0


def test_refund_of_a_payment_without_line_items_and_no_product_chosen_is_no_line_items(
    portal, fake_quickbooks, books, action_for
):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED, lines=[])
    items_before = item_ids_of(books)

    message = failed(
        refund_receipt(
            action_for, payment.payment_id, payment_account=account_id(books, "Checking"), products="line_items"
        ),
        "NO_LINE_ITEMS",
    )

    assert re.search(r"choose a (QuickBooks )?product", message, re.IGNORECASE)
    assert_nothing_written(books, fake_quickbooks, items_before)


def test_refund_receipt_lost_response_yields_one_refund_receipt(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED)
    fake_quickbooks.fail_next("POST /refundreceipt", 503, commit=True)

    fields = succeeded(refund_receipt(action_for, payment.payment_id, payment_account=account_id(books, "Checking")))

    [receipt] = books.all("RefundReceipt")
    assert fields["quickbooks_document_id"] == receipt["Id"]
    assert len(request_ids(fake_quickbooks, "/refundreceipt")) == 2
    assert len(set(request_ids(fake_quickbooks, "/refundreceipt"))) == 1


def test_refunded_payment_enrolled_again_answers_with_its_refund_receipt(portal, fake_quickbooks, books, action_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties=REFUNDED)
    checking = account_id(books, "Checking")
    first = succeeded(refund_receipt(action_for, payment.payment_id, payment_account=checking))
    fake_quickbooks.reset_requests()

    again = succeeded(refund_receipt(action_for, payment.payment_id, payment_account=checking))

    assert again == first
    assert writes(fake_quickbooks) == []
    assert len(books.all("RefundReceipt")) == 1
