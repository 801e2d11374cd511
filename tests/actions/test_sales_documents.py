"""create_invoice, create_estimate and create_sales_receipt end to end, through the signed endpoint and the fakes.

Quotes (their own line items, signer, number), estimates (expiration, service dates), sales receipts (deposit
account, payment method, reference, invoice payments), the date each document takes, the output fields, and
retries and re-enrollments that never leave a second QuickBooks document behind.
"""

import pytest

from tests.conftest import execution_body
from tests.scenarios import (
    DEFAULT_LINES,
    PAYMENT_PROPERTIES,
    account_id,
    add_contact,
    add_line_items,
    configure,
    quickbooks_calls,
    seed_products,
    stored_executions,
)

ENTITIES = {"create_invoice": "Invoice", "create_estimate": "Estimate", "create_sales_receipt": "SalesReceipt"}
PAGES = {"create_invoice": "invoice", "create_estimate": "estimate", "create_sales_receipt": "salesreceipt"}
RECORD_TYPES = {
    "create_invoice": ("DEAL", "QUOTE"),
    "create_estimate": ("DEAL", "QUOTE"),
    "create_sales_receipt": ("DEAL", "QUOTE", "COMMERCE_PAYMENT"),
}
ACTION_RECORDS = [(action, object_type) for action, types in RECORD_TYPES.items() for object_type in types]
DEAL_AND_QUOTE_RECORDS = [
    (action, object_type) for action, object_type in ACTION_RECORDS if object_type != "COMMERCE_PAYMENT"
]
ACTIONS = list(ENTITIES)

CRM_TYPES = {"DEAL": "deals", "QUOTE": "quotes", "COMMERCE_PAYMENT": "commerce_payments"}
RECORD_PROPERTIES = {
    "DEAL": {"dealname": "Acme rollout", "amount": "450", "closedate": "2026-11-30"},
    "QUOTE": {
        "hs_title": "Acme quote",
        "hs_quote_amount": "450",
        "hs_quote_number": "Q-2026-17",
        "hs_esign_date": "2026-10-07",
        "createdate": "2026-10-01T08:00:00Z",
    },
    "COMMERCE_PAYMENT": PAYMENT_PROPERTIES,  # paid 2026-11-28 by card, reference HSP-7F3K2
}
RECORD_DATES = {"DEAL": "2026-11-30", "QUOTE": "2026-10-07", "COMMERCE_PAYMENT": "2026-11-28"}
ANN = {"email": "ann.lee@acme.test", "firstname": "Ann", "lastname": "Lee"}
GADGET = {"name": "Gadget", "hs_sku": "G-1", "quantity": "1", "price": "50", "amount": "50", "hs_product_id": "503"}
QUERIES = ("POST /query", "POST /batch", "GET /query")


@pytest.fixture
def items(fake_quickbooks):
    """QuickBooks' Widget and Setup service (their ids), shared by every record a test makes."""
    return seed_products(fake_quickbooks)


@pytest.fixture
def make_record(portal, items):
    """make_record("QUOTE", hs_quote_number="Q-1"): a deal, quote or payment with line items and contact Ann Lee."""

    def make(object_type, *, lines=DEFAULT_LINES, contact=ANN, **properties) -> str:
        crm_type = CRM_TYPES[object_type]
        record_id = portal.add(crm_type, {**RECORD_PROPERTIES[object_type], **properties})
        add_line_items(portal, crm_type, record_id, lines)
        if contact:
            add_contact(portal, record_id, object_type=crm_type, **contact)
        return str(record_id)

    return make


def document_of(books, action, fields) -> dict:
    """The document a successful run created."""
    assert fields["hs_execution_state"] == "SUCCESS", fields
    document = books.get(ENTITIES[action], fields["quickbooks_document_id"])
    assert document is not None, fields
    return document


def failed(fields, code) -> str:
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", code), fields
    return fields["error_message"]


def item_lines(document) -> list[tuple]:
    """(ItemRef, Qty, Amount) of each product line."""
    return [
        (
            line["SalesItemLineDetail"]["ItemRef"]["value"],
            float(line["SalesItemLineDetail"].get("Qty", 0)),
            float(line["Amount"]),
        )
        for line in document["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]


def service_dates(document) -> list:
    return [
        line["SalesItemLineDetail"].get("ServiceDate")
        for line in document["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]


def quickbooks_writes(fake_quickbooks) -> list[str]:
    """Every QuickBooks request that could have changed the company (queries and batches of queries left out)."""
    return [call for call in quickbooks_calls(fake_quickbooks) if not call.startswith("GET") and call not in QUERIES]


def sent(fake_quickbooks, action) -> dict:
    """The one document body the action sent QuickBooks."""
    [request] = fake_quickbooks.requests_to("POST", f"/{ENTITIES[action].lower()}")
    return request.json


def named(books, entity, name_field, name) -> list[dict]:
    return [record for record in books.all(entity) if record.get(name_field) == name]


# -- quotes: their own line items, their signer ------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_a_quote_document_bills_the_quote_line_items_not_its_deals(
    portal, books, items, make_record, action_for, action
):
    widget_id, service_id = items
    deal_id = make_record(
        "DEAL", lines=[{"name": "Widget", "hs_sku": "W-1", "quantity": "7", "price": "100", "amount": "700"}]
    )
    quote_id = make_record("QUOTE")
    portal.associate("deals", deal_id, "quotes", quote_id)

    document = document_of(books, action, action_for(action, quote_id, "QUOTE"))

    assert item_lines(document) == [(widget_id, 2.0, 200.0), (service_id, 1.0, 250.0)]
    assert float(document["TotalAmt"]) == 450.0
    assert f"HubSpot quote {quote_id}" in document["PrivateNote"]


@pytest.mark.parametrize("action", ACTIONS)
def test_a_quote_without_line_items_is_no_line_items_even_when_its_deal_has_some(
    portal, fake_quickbooks, books, make_record, action_for, action
):
    deal_id = make_record("DEAL")
    quote_id = make_record("QUOTE", lines=[])
    portal.associate("deals", deal_id, "quotes", quote_id)

    message = failed(action_for(action, quote_id, "QUOTE"), "NO_LINE_ITEMS")

    assert f"The quote {quote_id} has no line items." in message
    assert quickbooks_writes(fake_quickbooks) == []
    assert books.all(ENTITIES[action]) == []


@pytest.mark.parametrize("action", ACTIONS)
def test_the_quote_signer_is_billed_when_customer_is_quote_signer(portal, books, make_record, action_for, action):
    quote_id = make_record("QUOTE", contact={"email": "buyer@acme.test", "firstname": "Bea", "lastname": "Buyer"})
    add_contact(
        portal,
        quote_id,
        object_type="quotes",
        type_id=702,
        label="Signer",
        email="signer@acme.test",
        firstname="Sid",
        lastname="Signer",
    )

    fields = action_for(action, quote_id, "QUOTE", customer="quote_signer")

    document = document_of(books, action, fields)
    customer = books.get("Customer", fields["quickbooks_customer_id"])
    assert document["CustomerRef"]["value"] == customer["Id"]
    assert (customer["DisplayName"], customer["PrimaryEmailAddr"]["Address"]) == ("Sid Signer", "signer@acme.test")
    assert document["BillEmail"]["Address"] == "signer@acme.test"


@pytest.mark.parametrize("action", ACTIONS)
def test_a_quote_without_a_signer_bills_its_first_contact(app, portal, books, make_record, action_for, action):
    quote_id = make_record("QUOTE", contact=None)
    for contact_id, name in ((900, "Lou"), (50, "Fay")):
        portal.add(
            "contacts", {"email": f"{name.lower()}@acme.test", "firstname": name, "lastname": "Lee"}, id=contact_id
        )
        portal.associate("quotes", quote_id, "contacts", contact_id)

    fields = action_for(action, quote_id, "QUOTE", customer="quote_signer")

    document_of(books, action, fields)
    assert books.get("Customer", fields["quickbooks_customer_id"])["DisplayName"] == "Fay Lee"
    [execution] = stored_executions(app)
    assert any(f"quote {quote_id} has no signer; billing its first contact" in note for note in execution.notes)


def test_first_associated_contact_on_a_quote_is_the_lowest_contact_even_with_a_signer(
    portal, books, make_record, action_for
):
    quote_id = make_record("QUOTE", contact=None)
    portal.add("contacts", {"email": "sid@acme.test", "firstname": "Sid", "lastname": "Signer"}, id=900)
    portal.associate("quotes", quote_id, "contacts", 900, type_id=702, label="Signer")
    portal.add("contacts", {"email": "fay@acme.test", "firstname": "Fay", "lastname": "First"}, id=50)
    portal.associate("quotes", quote_id, "contacts", 50)

    fields = action_for("create_estimate", quote_id, "QUOTE", customer="first_associated_contact")

    document_of(books, "create_estimate", fields)
    assert books.get("Customer", fields["quickbooks_customer_id"])["DisplayName"] == "Fay First"


# -- document numbers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ACTIONS)
def test_hubspot_numbering_makes_the_quote_number_the_document_number(
    app, fake_quickbooks, books, make_record, action_for, action
):
    configure(app, document_numbers="hubspot", document_number_property="invoice_number")
    quote_id = make_record("QUOTE", hs_quote_number="Q-2026-17")

    fields = action_for(action, quote_id, "QUOTE")

    assert document_of(books, action, fields)["DocNumber"] == "Q-2026-17"
    assert fields["quickbooks_document_number"] == "Q-2026-17"
    assert sent(fake_quickbooks, action)["DocNumber"] == "Q-2026-17"


@pytest.mark.parametrize("action", ACTIONS)
def test_hubspot_numbering_on_a_deal_uses_the_number_property(app, books, make_record, action_for, action):
    configure(app, document_numbers="hubspot", document_number_property="invoice_number")
    deal_id = make_record("DEAL", invoice_number="HS-2026-0042")

    fields = action_for(action, deal_id)

    assert document_of(books, action, fields)["DocNumber"] == "HS-2026-0042"
    assert fields["quickbooks_document_number"] == "HS-2026-0042"


@pytest.mark.parametrize("action", ACTIONS)
def test_quickbooks_numbering_ignores_the_quote_number(fake_quickbooks, books, make_record, action_for, action):
    quote_id = make_record("QUOTE", hs_quote_number="Q-2026-17")

    fields = action_for(action, quote_id, "QUOTE")

    assert "DocNumber" not in sent(fake_quickbooks, action)
    assert document_of(books, action, fields)["DocNumber"] == "1001"  # QuickBooks' own sequence
    assert fields["quickbooks_document_number"] == "1001"


def test_a_long_quote_number_does_not_matter_when_quickbooks_numbers(books, make_record, action_for):
    quote_id = make_record("QUOTE", hs_quote_number="ACME-2026-QUOTE-000042")

    assert document_of(books, "create_invoice", action_for("create_invoice", quote_id, "QUOTE"))["DocNumber"] == "1001"


@pytest.mark.parametrize("action", ACTIONS)
def test_a_hubspot_number_of_exactly_21_characters_is_kept_whole(app, books, make_record, action_for, action):
    configure(app, document_numbers="hubspot")
    number = "Q-2026-00000000000017"
    quote_id = make_record("QUOTE", hs_quote_number=number)

    fields = action_for(action, quote_id, "QUOTE")

    assert len(number) == 21
    assert document_of(books, action, fields)["DocNumber"] == number


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
def test_a_hubspot_number_over_21_characters_is_invalid_input_and_nothing_is_written(
    app, fake_quickbooks, books, make_record, action_for, action, object_type
):
    configure(app, document_numbers="hubspot", document_number_property="invoice_number")
    number = "ACME-2026-QUOTE-000042"  # 22 characters
    number_property = "hs_quote_number" if object_type == "QUOTE" else "invoice_number"
    record_id = make_record(object_type, **{number_property: number})

    message = failed(action_for(action, record_id, object_type), "INVALID_INPUT")

    assert f"'{number}'" in message  # named whole, never cut
    assert "22 characters long" in message
    assert "at most 21" in message
    assert "Shorten it in HubSpot" in message
    assert quickbooks_writes(fake_quickbooks) == []
    assert books.all(ENTITIES[action]) == [] and books.all("Customer") == []


# -- estimates ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expiration", ["2026-12-31", "2026-12-31T17:00:00Z", "1798675200000"])
def test_an_estimate_expires_when_its_quote_does(books, make_record, action_for, expiration):
    quote_id = make_record("QUOTE", hs_expiration_date=expiration)

    estimate = document_of(books, "create_estimate", action_for("create_estimate", quote_id, "QUOTE"))

    assert estimate["ExpirationDate"] == "2026-12-31"
    assert estimate["TxnStatus"] == "Pending"


def test_an_estimate_from_a_quote_without_expiration_date_has_none(fake_quickbooks, books, make_record, action_for):
    quote_id = make_record("QUOTE")

    estimate = document_of(books, "create_estimate", action_for("create_estimate", quote_id, "QUOTE"))

    assert "ExpirationDate" not in sent(fake_quickbooks, "create_estimate")
    assert "ExpirationDate" not in estimate


def test_an_estimate_from_a_deal_has_no_expiration_date(fake_quickbooks, books, make_record, action_for):
    deal_id = make_record("DEAL")

    estimate = document_of(books, "create_estimate", action_for("create_estimate", deal_id))

    assert "ExpirationDate" not in sent(fake_quickbooks, "create_estimate")
    assert "ExpirationDate" not in estimate


@pytest.mark.parametrize("action, object_type", [r for r in ACTION_RECORDS if r[0] != "create_invoice"])
def test_revenue_recognition_dates_every_line_by_the_record(books, make_record, action_for, action, object_type):
    books.set_pref("ProductAndServicesPrefs.RevenueRecognition", True)
    record_id = make_record(object_type)

    document = document_of(books, action, action_for(action, record_id, object_type))

    assert service_dates(document) == [RECORD_DATES[object_type]] * 2


@pytest.mark.parametrize("action, object_type", [r for r in ACTION_RECORDS if r[0] != "create_invoice"])
def test_without_revenue_recognition_lines_have_no_service_date(books, make_record, action_for, action, object_type):
    record_id = make_record(object_type)

    document = document_of(books, action, action_for(action, record_id, object_type))

    assert service_dates(document) == [None, None]


def test_estimate_line_billing_start_date_wins_over_the_record_date(books, items, make_record, action_for):
    books.set_pref("ProductAndServicesPrefs.RevenueRecognition", True)
    deal_id = make_record(
        "DEAL", lines=[{**DEFAULT_LINES[0], "hs_recurring_billing_start_date": "2027-01-15"}, DEFAULT_LINES[1]]
    )

    estimate = document_of(books, "create_estimate", action_for("create_estimate", deal_id))

    assert service_dates(estimate) == ["2027-01-15", "2026-11-30"]


# -- sales receipts: where the money went and how it was paid ----------------------------------------------


@pytest.mark.parametrize("object_type", RECORD_TYPES["create_sales_receipt"])
def test_a_sales_receipt_is_deposited_to_the_chosen_account(books, make_record, action_for, object_type):
    checking = account_id(books, "Checking")
    record_id = make_record(object_type)

    fields = action_for("create_sales_receipt", record_id, object_type, deposit_account=checking)

    assert document_of(books, "create_sales_receipt", fields)["DepositToAccountRef"]["value"] == checking


@pytest.mark.parametrize("object_type", RECORD_TYPES["create_sales_receipt"])
def test_a_sales_receipt_without_deposit_account_goes_to_undeposited_funds(
    fake_quickbooks, books, make_record, action_for, object_type
):
    record_id = make_record(object_type)

    receipt = document_of(books, "create_sales_receipt", action_for("create_sales_receipt", record_id, object_type))

    assert "DepositToAccountRef" not in sent(fake_quickbooks, "create_sales_receipt")  # QuickBooks' default
    assert receipt["DepositToAccountRef"]["value"] == account_id(books, "Undeposited Funds")


def test_an_unknown_deposit_account_is_invalid_input_naming_the_field(books, make_record, action_for):
    payment_id = make_record("COMMERCE_PAYMENT")

    message = failed(
        action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT", deposit_account="9999"), "INVALID_INPUT"
    )

    assert "the account chosen in the action ('Deposit to' or 'Refund from')" in message
    assert books.all("SalesReceipt") == []


@pytest.mark.parametrize(
    "method_type, method_name",
    [
        ("card", "Credit Card"),
        ("cash", "Cash"),
        ("check", "Check"),
        ("ach", "ACH"),
        ("wire_transfer", "Wire transfer"),
        ("sepa", "SEPA Direct Debit"),
        ("bacs", "Bacs Direct Debit"),
        ("pads", "Pre-authorized debit"),
        ("other", "Other"),
    ],
)
def test_the_payment_method_is_the_quickbooks_method_named_for_hubspots_type(
    books, make_record, action_for, method_type, method_name
):
    payment_id = make_record("COMMERCE_PAYMENT", hs_payment_method_type=method_type)

    receipt = document_of(
        books, "create_sales_receipt", action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")
    )

    [method] = named(books, "PaymentMethod", "Name", method_name)
    assert receipt["PaymentMethodRef"]["value"] == method["Id"]


@pytest.mark.parametrize("method_type, method_name", [("card", "Credit Card"), ("cash", "Cash"), ("check", "Check")])
def test_a_payment_method_quickbooks_has_is_used_not_created(
    fake_quickbooks, books, make_record, action_for, method_type, method_name
):
    existing = books.find("PaymentMethod", Name=method_name)
    payment_id = make_record("COMMERCE_PAYMENT", hs_payment_method_type=method_type)

    receipt = document_of(
        books, "create_sales_receipt", action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")
    )

    assert receipt["PaymentMethodRef"]["value"] == existing["Id"]
    assert fake_quickbooks.requests_to("POST", "/paymentmethod") == []


@pytest.mark.parametrize(
    "method_type, method_name, kind",
    [("ach", "ACH", "NON_CREDIT_CARD"), ("wire_transfer", "Wire transfer", "NON_CREDIT_CARD")],
)
def test_a_missing_payment_method_is_created_once_for_all_payments(
    fake_quickbooks, books, make_record, action_for, method_type, method_name, kind
):
    first = make_record("COMMERCE_PAYMENT", hs_payment_method_type=method_type, hs_reference_number="HSP-1")
    second = make_record("COMMERCE_PAYMENT", hs_payment_method_type=method_type, hs_reference_number="HSP-2")

    receipts = [
        document_of(books, "create_sales_receipt", action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT"))
        for payment_id in (first, second)
    ]

    [method] = named(books, "PaymentMethod", "Name", method_name)
    assert method["Type"] == kind
    assert [r["PaymentMethodRef"]["value"] for r in receipts] == [method["Id"], method["Id"]]
    assert len(fake_quickbooks.requests_to("POST", "/paymentmethod")) == 1


def test_a_remembered_payment_method_made_inactive_refuses_the_write_once(
    app, fake_quickbooks, books, make_record, action_for
):
    first = make_record("COMMERCE_PAYMENT", hs_payment_method_type="check", hs_reference_number="HSP-1")
    second = make_record("COMMERCE_PAYMENT", hs_payment_method_type="check", hs_reference_number="HSP-2")
    check = books.find("PaymentMethod", Name="Check")
    document_of(books, "create_sales_receipt", action_for("create_sales_receipt", first, "COMMERCE_PAYMENT"))
    books.patch("PaymentMethod", check["Id"], Active=False)
    fake_quickbooks.reset_requests()

    fields = action_for("create_sales_receipt", second, "COMMERCE_PAYMENT")

    receipt = document_of(books, "create_sales_receipt", fields)
    assert "PaymentMethodRef" not in receipt  # an inactive method is left out, as when it is looked up
    writes = fake_quickbooks.requests_to("POST", "/salesreceipt")
    assert [w.json.get("PaymentMethodRef") for w in writes] == [{"value": check["Id"]}, None]
    assert len(books.all("SalesReceipt")) == 2
    notes = " ".join(stored_executions(app)[1].notes)
    assert "Resolving the remembered payment method again" in notes
    assert "payment method 'Check' is inactive" in notes


def test_the_payment_reference_becomes_the_payment_ref_num(books, make_record, action_for):
    payment_id = make_record("COMMERCE_PAYMENT", hs_reference_number="HSP-7F3K2")

    receipt = document_of(
        books, "create_sales_receipt", action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")
    )

    assert receipt["PaymentRefNum"] == "HSP-7F3K2"


@pytest.mark.parametrize("object_type", ["DEAL", "QUOTE"])
def test_deal_and_quote_sales_receipts_carry_no_payment_method_or_reference(
    fake_quickbooks, books, make_record, action_for, object_type
):
    record_id = make_record(object_type)

    receipt = document_of(books, "create_sales_receipt", action_for("create_sales_receipt", record_id, object_type))

    body = sent(fake_quickbooks, "create_sales_receipt")
    assert "PaymentMethodRef" not in body and "PaymentRefNum" not in body
    assert "PaymentMethodRef" not in receipt and "PaymentRefNum" not in receipt
    assert fake_quickbooks.requests_to("POST", "/paymentmethod") == []


def test_a_payment_of_a_hubspot_invoice_is_payment_from_invoice_and_writes_nothing(
    fake_quickbooks, books, make_record, action_for
):
    payment_id = make_record("COMMERCE_PAYMENT", hs_payment_source_app="INVOICE", hs_payment_method_type="ach")

    message = failed(action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT"), "PAYMENT_FROM_INVOICE")

    assert f"The payment {payment_id} pays a HubSpot invoice" in message
    assert "would count the sale twice" in message
    assert "Add the enrollment filter 'Source is not equal to all of Invoice' to the workflow" in message
    assert "turn on the setting allow_invoice_payments" in message
    assert quickbooks_writes(fake_quickbooks) == []
    assert books.all("SalesReceipt") == [] and books.all("Customer") == []
    assert named(books, "PaymentMethod", "Name", "ACH") == []


@pytest.mark.parametrize("allow", ["on", "true"])
def test_a_payment_of_a_hubspot_invoice_is_recorded_when_allow_invoice_payments_is_on(
    app, books, make_record, action_for, allow
):
    configure(app, allow_invoice_payments=allow)
    payment_id = make_record("COMMERCE_PAYMENT", hs_payment_source_app="INVOICE")

    receipt = document_of(
        books, "create_sales_receipt", action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")
    )

    assert float(receipt["TotalAmt"]) == 450.0
    assert len(books.all("SalesReceipt")) == 1


@pytest.mark.parametrize("source_app", ["SALES_CHECKOUT", "QUOTE", "SUBSCRIPTION", ""])
def test_payments_from_other_sources_are_recorded(books, make_record, action_for, source_app):
    payment_id = make_record("COMMERCE_PAYMENT", hs_payment_source_app=source_app)

    document_of(books, "create_sales_receipt", action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT"))

    assert len(books.all("SalesReceipt")) == 1


def test_a_refused_invoice_payment_enrolled_again_after_allowing_it_is_recorded_once(
    app, books, make_record, action_for
):
    payment_id = make_record("COMMERCE_PAYMENT", hs_payment_source_app="INVOICE")
    failed(action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT"), "PAYMENT_FROM_INVOICE")

    configure(app, allow_invoice_payments="on")
    fields = action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")

    assert [r["Id"] for r in books.all("SalesReceipt")] == [document_of(books, "create_sales_receipt", fields)["Id"]]


# -- the date each document takes --------------------------------------------------------------------------

DATE_CASES = [
    ("DEAL", {"closedate": "2026-11-30"}, "2026-11-30"),
    ("DEAL", {"closedate": "2026-11-30T17:00:00Z"}, "2026-11-30"),
    ("DEAL", {"closedate": "1796083200000"}, "2026-12-01"),
    ("QUOTE", {"hs_esign_date": "2026-10-07T09:00:00Z", "createdate": "2026-10-01T08:00:00Z"}, "2026-10-07"),
    ("QUOTE", {"hs_esign_date": "1791363600000", "createdate": "2026-10-01T08:00:00Z"}, "2026-10-07"),
    ("QUOTE", {"hs_esign_date": "", "createdate": "2026-10-01T08:00:00Z"}, "2026-10-01"),
    ("QUOTE", {"hs_esign_date": "", "createdate": "1796083200000"}, "2026-12-01"),
    ("COMMERCE_PAYMENT", {"hs_initiated_date": "2026-11-28T15:04:05Z"}, "2026-11-28"),
    ("COMMERCE_PAYMENT", {"hs_initiated_date": "2026-11-28"}, "2026-11-28"),
    ("COMMERCE_PAYMENT", {"hs_initiated_date": "1795878245000"}, "2026-11-28"),
]


@pytest.mark.parametrize(
    "action, object_type, properties, expected",
    [
        (action, object_type, properties, expected)
        for action in ACTIONS
        for object_type, properties, expected in DATE_CASES
        if object_type in RECORD_TYPES[action]
    ],
)
def test_the_document_is_dated_by_its_record(books, make_record, action_for, action, object_type, properties, expected):
    record_id = make_record(object_type, **properties)

    document = document_of(books, action, action_for(action, record_id, object_type))

    assert document["TxnDate"] == expected


# -- output fields -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
def test_a_success_answers_string_outputs_naming_the_document(books, make_record, action_for, action, object_type):
    record_id = make_record(object_type)

    fields = action_for(action, record_id, object_type)

    document = document_of(books, action, fields)
    assert all(isinstance(value, str) for value in fields.values()), fields
    assert fields == {
        "hs_execution_state": "SUCCESS",
        "quickbooks_document_id": document["Id"],
        "quickbooks_document_number": document["DocNumber"],
        "quickbooks_document_url": f"https://app.sandbox.qbo.intuit.com/app/{PAGES[action]}?txnId={document['Id']}",
        "quickbooks_customer_id": document["CustomerRef"]["value"],
        "error_code": "",
        "error_message": "",
    }


@pytest.mark.parametrize("action", ACTIONS)
def test_a_failure_answers_string_outputs_with_code_and_message(make_record, action_for, action):
    deal_id = make_record("DEAL", lines=[])

    fields = action_for(action, deal_id)

    assert all(isinstance(value, str) for value in fields.values()), fields
    assert fields["hs_execution_state"] == "FAIL_CONTINUE"
    assert fields["error_code"] == "NO_LINE_ITEMS"
    assert fields["error_message"].startswith(f"The deal {deal_id} has no line items.")
    assert fields.get("quickbooks_document_id", "") == ""


# -- records failing before the write leave nothing in QuickBooks ------------------------------------------

PRE_WRITE_FAILURES = {
    "NO_LINE_ITEMS": ({"lines": []}, "has no line items"),
    "PRODUCT_NOT_FOUND": (
        {"lines": [{"name": "Gizmo", "hs_sku": "GZ-9", "quantity": "1", "price": "5", "amount": "5"}]},
        "'Gizmo' (SKU GZ-9)",
    ),
    # A payment without a contact would bill its customer email, so it has none either.
    "CONTACT_MISSING": ({"contact": None, "hs_customer_email": ""}, "has no associated contact to bill"),
}


@pytest.mark.parametrize("code", list(PRE_WRITE_FAILURES))
@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
def test_a_record_failing_before_the_write_leaves_nothing_in_quickbooks(
    fake_quickbooks, books, make_record, action_for, action, object_type, code
):
    record, words = PRE_WRITE_FAILURES[code]
    record_id = make_record(object_type, **record)

    message = failed(action_for(action, record_id, object_type), code)

    assert words in message
    assert quickbooks_writes(fake_quickbooks) == []
    assert books.all(ENTITIES[action]) == [] and books.all("Customer") == []


# -- retries never duplicate -------------------------------------------------------------------------------


def writes_of(action, object_type) -> list[str]:
    writes = ["/customer", "/item", f"/{ENTITIES[action].lower()}"]
    return writes + ["/paymentmethod"] if object_type == "COMMERCE_PAYMENT" else writes


RETRY_CASES = [
    (action, object_type, write) for action, object_type in ACTION_RECORDS for write in writes_of(action, object_type)
]


def record_with_every_write(make_record, object_type) -> str:
    """A record whose run creates the customer, the product Gadget, (ACH for a payment) and the document."""
    return make_record(object_type, lines=[*DEFAULT_LINES, GADGET], hs_payment_method_type="ach")


def assert_written_once(books, action, object_type, fields) -> None:
    document = document_of(books, action, fields)
    assert [d["Id"] for d in books.all(ENTITIES[action])] == [document["Id"]]
    assert len(named(books, "Customer", "DisplayName", "Ann Lee")) == 1
    assert len(named(books, "Item", "Name", "Gadget")) == 1
    if object_type == "COMMERCE_PAYMENT":
        assert len(named(books, "PaymentMethod", "Name", "ACH")) == 1


@pytest.mark.parametrize("fault", ["lost response", "503"])
@pytest.mark.parametrize("action, object_type, write", RETRY_CASES)
def test_a_failed_write_is_retried_into_exactly_one_of_each_record(
    fake_quickbooks, books, make_record, action_for, action, object_type, write, fault
):
    record_id = record_with_every_write(make_record, object_type)
    if fault == "lost response":
        fake_quickbooks.fail_next(f"POST {write}", 500, commit=True)
    else:
        fake_quickbooks.fail_next(f"POST {write}", 503)

    fields = action_for(action, record_id, object_type, create_missing_products="true")

    assert_written_once(books, action, object_type, fields)
    first, retry = fake_quickbooks.requests_to("POST", write)  # the fault was hit, and the write tried again
    assert first.query["requestid"] == retry.query["requestid"]


@pytest.mark.parametrize("fault", ["lost response", "503"])
@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
def test_a_document_write_failing_past_the_quick_retries_is_retried_later_once(
    fake_quickbooks, fake_hubspot, books, connection, signed_post, run_due_jobs, make_record, action, object_type, fault
):
    record_id = record_with_every_write(make_record, object_type)
    document_write = f"POST /{ENTITIES[action].lower()}"
    if fault == "lost response":
        fake_quickbooks.fail_next(document_write, 500, commit=True, times=3)
    else:
        fake_quickbooks.fail_next(document_write, 503, times=3)
    callback_id = "ap-62515-1001-1-0"

    signed_post(
        f"/hubspot/actions/{action}",
        execution_body(
            callback_id=callback_id,
            object_id=record_id,
            object_type=object_type,
            inputs={"create_missing_products": "true"},
        ),
    )
    assert fake_hubspot.completion_for(callback_id) is None  # not given up: a later try is scheduled
    assert run_due_jobs() >= 1

    completion = fake_hubspot.completion_for(callback_id)
    assert completion is not None
    assert_written_once(books, action, object_type, completion.output_fields)


# -- enrolled again ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("action, object_type", DEAL_AND_QUOTE_RECORDS)
def test_a_deal_or_quote_enrolled_again_gets_another_document(books, make_record, action_for, action, object_type):
    record_id = make_record(object_type)

    first = action_for(action, record_id, object_type)
    second = action_for(action, record_id, object_type)

    documents = [document_of(books, action, fields) for fields in (first, second)]
    assert documents[0]["Id"] != documents[1]["Id"]
    assert sorted(d["Id"] for d in books.all(ENTITIES[action])) == sorted(d["Id"] for d in documents)
    assert first["quickbooks_customer_id"] == second["quickbooks_customer_id"]


def test_a_payment_enrolled_again_answers_with_its_first_sales_receipt_and_writes_nothing(
    fake_quickbooks, books, make_record, action_for
):
    payment_id = make_record("COMMERCE_PAYMENT", hs_payment_method_type="ach")
    first = action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")
    writes_before = quickbooks_writes(fake_quickbooks)

    again = action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")

    assert again["hs_execution_state"] == "SUCCESS"
    assert again == first
    assert [r["Id"] for r in books.all("SalesReceipt")] == [first["quickbooks_document_id"]]
    assert quickbooks_writes(fake_quickbooks) == writes_before


def test_a_payment_enrolled_again_says_which_execution_made_its_document(app, make_record, action_for):
    payment_id = make_record("COMMERCE_PAYMENT")
    first = action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")

    action_for("create_sales_receipt", payment_id, "COMMERCE_PAYMENT")

    first_run, second_run = stored_executions(app)
    assert any(
        f"already has its QuickBooks document from execution {first_run.callback_id}" in note
        and first["quickbooks_document_url"] in note
        for note in second_run.notes
    )
