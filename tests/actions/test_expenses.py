"""create_expense: a QuickBooks expense (Purchase) for the processing fee of a HubSpot payment.

End to end through the signed endpoint against the fakes: the fee line, the paid-from account and its
payment type, the payments vendor (chosen, found, or created once), the date and memo, the inputs refused
before anything is written, lost responses, and one expense per payment however often it is enrolled.
"""

import pytest

from tests.conftest import PORTAL_ID, execution_body
from tests.scenarios import PAYMENT_PROPERTIES, account_id, quickbooks_calls, seed_payment, stored_executions

ACTION = "create_expense"
PROCESSOR = "HubSpot Payments"
APP_URL = "https://app.sandbox.qbo.intuit.com"


# -- helpers -----------------------------------------------------------------------------------------------


@pytest.fixture
def expense_for(action_for, books):
    """Run create_expense on a payment: paid from Checking, booked to Bank Charges unless the inputs say else."""

    def run(payment_id, callback_id=None, **inputs):
        inputs = {
            "payment_account": account_id(books, "Checking"),
            "expense_account": account_id(books, "Bank Charges"),
            **inputs,
        }
        return action_for(ACTION, payment_id, "COMMERCE_PAYMENT", callback_id, **inputs)

    return run


def expense_of(books, fields) -> dict:
    """The Purchase a successful run created."""
    assert fields["hs_execution_state"] == "SUCCESS", fields
    purchase = books.get("Purchase", fields["quickbooks_document_id"])
    assert purchase is not None, f"no Purchase {fields['quickbooks_document_id']} in QuickBooks"
    return purchase


def failed(fields, code) -> str:
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", code), fields
    return fields["error_message"]


def add_payment(portal, properties=None, *, email="ann.lee@acme.test") -> str:
    """Another payment in the same portal (seed_payment creates QuickBooks items, so it runs once per test)."""
    values = {**PAYMENT_PROPERTIES, "hs_customer_email": email, **(properties or {})}
    return str(portal.add("commerce_payments", {k: v for k, v in values.items() if v is not None}))


def vendor_lookups(fake_quickbooks) -> list:
    """QuickBooks queries (alone or in a batch) that ask about vendors."""
    return [
        r
        for r in fake_quickbooks.requests
        if r.path.endswith(("/query", "/batch"))
        and "from vendor" in f"{r.body or ''} {r.query.get('query', '')}".lower()
    ]


def quickbooks_writes(fake_quickbooks) -> list[str]:
    """Every QuickBooks request that could create or change something: POSTs other than queries."""
    writes = []
    for request, call in zip(
        [r for r in fake_quickbooks.requests if "/v3/company/" in r.path],
        quickbooks_calls(fake_quickbooks),
        strict=True,
    ):
        if not call.startswith("POST ") or call.endswith("/query"):
            continue
        if (
            call.endswith("/batch")
            and isinstance(request.json, dict)
            and all("Query" in item for item in request.json.get("BatchItemRequest", []))
        ):
            continue
        writes.append(call)
    return writes


def sent_purchase(fake_quickbooks) -> dict:
    """The body of the (last) Purchase create QuickBooks received."""
    return fake_quickbooks.requests_to("POST", "/purchase")[-1].json


def assert_nothing_written(books, fake_quickbooks):
    assert books.all("Purchase") == []
    assert books.all("Vendor") == []
    assert quickbooks_writes(fake_quickbooks) == []


# -- the expense -------------------------------------------------------------------------------------------


def test_expense_books_the_fee_paid_from_checking_to_the_payments_vendor(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks)

    fields = expense_for(payment.payment_id)

    purchase = expense_of(books, fields)
    assert purchase["PaymentType"] == "Cash"
    assert purchase["AccountRef"]["value"] == account_id(books, "Checking")
    [line] = purchase["Line"]
    assert line["DetailType"] == "AccountBasedExpenseLineDetail"
    assert float(line["Amount"]) == 13.35
    assert line["AccountBasedExpenseLineDetail"]["AccountRef"]["value"] == account_id(books, "Bank Charges")
    assert float(purchase["TotalAmt"]) == 13.35
    [vendor] = books.all("Vendor")
    assert vendor["DisplayName"] == PROCESSOR
    assert purchase["EntityRef"]["value"] == vendor["Id"]
    assert sent_purchase(fake_quickbooks)["EntityRef"] == {"value": str(vendor["Id"]), "type": "Vendor"}
    assert purchase["TxnDate"] == "2026-11-30"  # the payout date
    assert "HSP-7F3K2" in purchase["PrivateNote"]
    assert books.all("Customer") == []  # an expense bills nobody


def test_expense_outputs_link_the_expense_and_name_no_customer(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks)

    fields = expense_for(payment.payment_id)

    purchase = expense_of(books, fields)
    assert fields["quickbooks_document_id"] == str(purchase["Id"])
    assert fields["quickbooks_document_url"] == f"{APP_URL}/app/expense?txnId={purchase['Id']}"
    assert fields["quickbooks_customer_id"] == ""
    assert fields["error_code"] == ""


def test_credit_card_account_makes_a_credit_card_expense(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks)

    purchase = expense_of(books, expense_for(payment.payment_id, payment_account=account_id(books, "Mastercard")))

    assert purchase["PaymentType"] == "CreditCard"
    assert purchase["AccountRef"]["value"] == account_id(books, "Mastercard")


@pytest.mark.parametrize("payout_date", [None, ""], ids=["unset", "empty"])
def test_without_payout_date_the_expense_is_dated_by_the_payment_date(
    portal, fake_quickbooks, books, expense_for, payout_date
):
    payment = seed_payment(portal, fake_quickbooks, payment_properties={"hs_payout_date": payout_date})

    purchase = expense_of(books, expense_for(payment.payment_id))

    assert purchase["TxnDate"] == "2026-11-28"  # hs_initiated_date 2026-11-28T15:04:05Z


def test_payment_from_an_invoice_may_have_its_fee_recorded(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks, payment_properties={"hs_payment_source_app": "INVOICE"})

    purchase = expense_of(books, expense_for(payment.payment_id))

    assert float(purchase["TotalAmt"]) == 13.35


# -- the vendor --------------------------------------------------------------------------------------------


def test_vendor_chosen_in_the_action_is_the_payee(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks)
    stripe = books.add_vendor(DisplayName="Stripe")

    purchase = expense_of(books, expense_for(payment.payment_id, vendor=str(stripe["Id"])))

    assert purchase["EntityRef"]["value"] == str(stripe["Id"])
    assert sent_purchase(fake_quickbooks)["EntityRef"] == {"value": str(stripe["Id"]), "type": "Vendor"}
    assert [v["DisplayName"] for v in books.all("Vendor")] == ["Stripe"]
    assert vendor_lookups(fake_quickbooks) == []


def test_payments_vendor_is_created_once_and_remembered(portal, fake_quickbooks, books, expense_for):
    first_payment = seed_payment(portal, fake_quickbooks)
    second_payment = add_payment(portal, {"hs_reference_number": "HSP-9Q8W7"})
    first = expense_of(books, expense_for(first_payment.payment_id))
    assert vendor_lookups(fake_quickbooks)
    fake_quickbooks.reset_requests()

    second = expense_of(books, expense_for(second_payment))

    assert second["Id"] != first["Id"]
    assert second["EntityRef"]["value"] == first["EntityRef"]["value"]
    assert len(books.all("Vendor")) == 1
    assert vendor_lookups(fake_quickbooks) == []
    assert "POST /vendor" not in quickbooks_calls(fake_quickbooks)


def test_existing_active_payments_vendor_is_reused(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks)
    existing = books.add_vendor(DisplayName="hubspot payments")

    purchase = expense_of(books, expense_for(payment.payment_id))

    assert purchase["EntityRef"]["value"] == str(existing["Id"])
    assert len(books.all("Vendor")) == 1


def test_customer_holding_the_processor_name_makes_the_vendor_name_its_own(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks)
    books.add_customer(DisplayName=PROCESSOR)

    purchase = expense_of(books, expense_for(payment.payment_id))

    [vendor] = books.all("Vendor")
    assert vendor["DisplayName"] == f"{PROCESSOR} (vendor)"
    assert purchase["EntityRef"]["value"] == vendor["Id"]
    assert len(books.all("Customer")) == 1


# -- refused before anything is written --------------------------------------------------------------------


@pytest.mark.parametrize("fee", ["absent", "0"])
def test_payment_without_a_fee_is_no_payment_fee(portal, fake_quickbooks, books, expense_for, fee):
    payment_id = add_payment(portal, {"hs_fees_amount": None if fee == "absent" else fee})

    message = failed(expense_for(payment_id), "NO_PAYMENT_FEE")

    assert f"payment {payment_id}" in message
    assert_nothing_written(books, fake_quickbooks)


@pytest.mark.parametrize("paid_from", ["empty", "unknown", "inactive", "expense account", "income account"])
def test_paid_from_that_cannot_pay_is_invalid_input(portal, fake_quickbooks, books, expense_for, paid_from):
    payment = seed_payment(portal, fake_quickbooks)
    if paid_from == "inactive":
        books.patch("Account", account_id(books, "Checking"), Active=False)
    account = {
        "empty": "",
        "unknown": "99999",
        "inactive": account_id(books, "Checking"),
        "expense account": account_id(books, "Bank Charges"),
        "income account": account_id(books, "Services"),
    }[paid_from]

    message = failed(expense_for(payment.payment_id, payment_account=account), "INVALID_INPUT")

    assert "'Paid from'" in message
    assert_nothing_written(books, fake_quickbooks)


def test_empty_expense_account_is_invalid_input(portal, fake_quickbooks, books, expense_for):
    payment = seed_payment(portal, fake_quickbooks)

    message = failed(expense_for(payment.payment_id, expense_account=""), "INVALID_INPUT")

    assert "'Expense account'" in message
    assert_nothing_written(books, fake_quickbooks)


# -- lost responses and enrolling again --------------------------------------------------------------------


def lost_response_then_run(fake_quickbooks, fake_hubspot, books, signed_post, run_due_jobs, payment_id, write, outage):
    """Fail the write after QuickBooks stored it: once (retried inline) or on every inline retry (the
    execution is rescheduled and runs again). Answers the completed callback's output fields."""
    fake_quickbooks.fail_next(f"POST {write}", 500, commit=True, times=1 if outage == "inline retry" else 3)
    callback_id = f"ap-{PORTAL_ID}-1001-1-0"
    inputs = {"payment_account": account_id(books, "Checking"), "expense_account": account_id(books, "Bank Charges")}
    signed_post(
        f"/hubspot/actions/{ACTION}",
        execution_body(callback_id=callback_id, object_id=payment_id, object_type="COMMERCE_PAYMENT", inputs=inputs),
    )
    if outage == "next run":
        assert fake_hubspot.completion_for(callback_id) is None  # postponed
        assert run_due_jobs() >= 1
    completion = fake_hubspot.completion_for(callback_id)
    assert completion is not None, "the execution never completed its callback"
    return completion.output_fields


def request_ids(fake_quickbooks, write) -> list[str]:
    return [r.query.get("requestid") for r in fake_quickbooks.requests_to("POST", write)]


@pytest.mark.parametrize("outage", ["inline retry", "next run"])
def test_lost_response_on_the_expense_write_leaves_one_expense(
    portal, connection, fake_quickbooks, fake_hubspot, books, signed_post, run_due_jobs, outage
):
    payment = seed_payment(portal, fake_quickbooks)

    fields = lost_response_then_run(
        fake_quickbooks, fake_hubspot, books, signed_post, run_due_jobs, payment.payment_id, "/purchase", outage
    )

    purchase = expense_of(books, fields)
    assert [p["Id"] for p in books.all("Purchase")] == [purchase["Id"]]
    assert len(request_ids(fake_quickbooks, "/purchase")) >= 2  # it was sent again...
    assert len(set(request_ids(fake_quickbooks, "/purchase"))) == 1  # ...under the same request id
    assert len(books.all("Vendor")) == 1


@pytest.mark.parametrize("outage", ["inline retry", "next run"])
def test_lost_response_on_the_vendor_create_leaves_one_vendor(
    portal, connection, fake_quickbooks, fake_hubspot, books, signed_post, run_due_jobs, outage
):
    payment = seed_payment(portal, fake_quickbooks)

    fields = lost_response_then_run(
        fake_quickbooks, fake_hubspot, books, signed_post, run_due_jobs, payment.payment_id, "/vendor", outage
    )

    purchase = expense_of(books, fields)
    [vendor] = books.all("Vendor")
    assert vendor["DisplayName"] == PROCESSOR
    assert purchase["EntityRef"]["value"] == vendor["Id"]
    assert len(books.all("Purchase")) == 1


def test_same_payment_enrolled_again_answers_with_its_expense_and_writes_nothing(
    app, portal, fake_quickbooks, books, expense_for
):
    payment = seed_payment(portal, fake_quickbooks)
    first = expense_for(payment.payment_id, callback_id=f"ap-{PORTAL_ID}-1001-1-0")
    purchase = expense_of(books, first)
    fake_quickbooks.reset_requests()

    again = expense_for(payment.payment_id, callback_id=f"ap-{PORTAL_ID}-2002-1-0")

    assert again["hs_execution_state"] == "SUCCESS", again
    assert again["quickbooks_document_id"] == first["quickbooks_document_id"] == str(purchase["Id"])
    assert again["quickbooks_document_url"] == first["quickbooks_document_url"]
    assert len(books.all("Purchase")) == 1 and len(books.all("Vendor")) == 1
    assert quickbooks_writes(fake_quickbooks) == []
    assert len(stored_executions(app)) == 2
