"""Issue 14: paid invoices and fee expenses from HubSpot payments on US, UK, Canadian and Australian companies.

End to end through the signed endpoint against the fakes. Taxes: US companies keep HubSpot's rule (non-taxable
lines only); elsewhere lines name the mapped tax codes and the payment must cover the total with tax (to the
cent QuickBooks' rounding may move). Currencies: multicurrency off refuses a foreign payment; on, documents,
customers, vendors and accounts are in the payment's currency.
"""

from decimal import Decimal

import pytest

from tests.scenarios import (
    DEFAULT_LINES,
    PAYMENT_PROPERTIES,
    STANDARD_TAX,
    UNTAXED_TAX_CODE,
    account_id,
    map_standard_tax_codes,
    quickbooks_calls,
    seed_payment,
    stored_executions,
)

PAID_INVOICE = "create_paid_invoice"
EXPENSE = "create_expense"
PAYMENT = "COMMERCE_PAYMENT"
HOME_CURRENCY = {"US": "USD", "GB": "GBP", "CA": "CAD", "AU": "AUD"}
EVERY_COUNTRY = pytest.mark.parametrize("country", ["US", "GB", "CA", "AU"], indirect=True)
OUTSIDE_US = pytest.mark.parametrize("country", ["GB", "CA", "AU"], indirect=True)
IN_US = pytest.mark.parametrize("country", ["US"], indirect=True)


# -- helpers -----------------------------------------------------------------------------------------------


def paid_invoice(action_for, payment_id, **inputs) -> dict:
    return action_for(PAID_INVOICE, payment_id, PAYMENT, **inputs)


@pytest.fixture
def expense_for(action_for, books):
    """Run create_expense on a payment: paid from Checking, booked to Bank Charges unless the inputs say else."""

    def run(payment_id, **inputs):
        inputs = {
            "payment_account": account_id(books, "Checking"),
            "expense_account": account_id(books, "Bank Charges"),
            **inputs,
        }
        return action_for(EXPENSE, payment_id, PAYMENT, **inputs)

    return run


def succeeded(fields) -> dict:
    assert fields["hs_execution_state"] == "SUCCESS", fields
    assert (fields["error_code"], fields["error_message"]) == ("", "")
    return fields


def failed(fields, code) -> str:
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", code), fields
    assert fields["error_message"]
    return fields["error_message"]


def amount(value) -> Decimal:
    return Decimal(str(value))


def standard_rate(books) -> Decimal:
    return Decimal(STANDARD_TAX[books.country][0])


def standard_code_id(books) -> str:
    return str(books.tax_code_named(STANDARD_TAX[books.country][1])["Id"])


def untaxed_code_id(books) -> str:
    return str(books.tax_code_named(UNTAXED_TAX_CODE[books.country])["Id"])


def total_with_tax(books) -> Decimal:
    """The seeded lines, 200 taxed at the company's standard rate and 250 untaxed, with tax: 200 × (1 + rate) + 250."""
    return Decimal(200) * (1 + standard_rate(books) / 100) + Decimal(250)


def taxed_lines(rate: Decimal) -> list[dict]:
    """seed_payment's two lines, the first (200) taxed at `rate` percent as HubSpot records it."""
    tax = Decimal(200) * rate / 100
    return [{**DEFAULT_LINES[0], "hs_tax_rate": str(rate), "hs_tax_amount": str(tax)}, DEFAULT_LINES[1]]


def seed_home_payment(portal, fake_quickbooks, books, *, lines=None, **properties):
    """seed_payment's payment (450, fee 13.35), in the company's home currency unless `properties` say else."""
    properties = {"hs_currency_code": HOME_CURRENCY[books.country], **properties}
    return seed_payment(portal, fake_quickbooks, lines=lines, payment_properties=properties)


def seed_taxed_payment(portal, fake_quickbooks, books, paid=None):
    """A payment whose Widget line is taxed at the standard rate, for the total with tax unless `paid` says else."""
    paid = total_with_tax(books) if paid is None else paid
    return seed_home_payment(
        portal, fake_quickbooks, books, lines=taxed_lines(standard_rate(books)), hs_initial_amount=str(paid)
    )


def add_payment(portal, properties=None) -> str:
    """Another payment in the same portal (seed_payment creates QuickBooks items, so it runs once per test)."""
    return str(portal.add("commerce_payments", {**PAYMENT_PROPERTIES, **(properties or {})}))


def item_lines(document) -> list[dict]:
    return [line for line in document["Line"] if line["DetailType"] == "SalesItemLineDetail"]


def line_tax_codes(document) -> list[str]:
    return [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in item_lines(document)]


def writes(fake_quickbooks) -> list[str]:
    """The QuickBooks requests that create something: POSTs other than queries (single or batched)."""
    found = []
    requests = [r for r in fake_quickbooks.requests if "/v3/company/" in r.path]
    for request, call in zip(requests, quickbooks_calls(fake_quickbooks), strict=True):
        if not call.startswith("POST ") or call.endswith("/query"):
            continue
        if (
            call.endswith("/batch")
            and isinstance(request.json, dict)
            and all("Query" in item for item in request.json.get("BatchItemRequest", []))
        ):
            continue
        found.append(call)
    return found


def assert_nothing_written(books, fake_quickbooks):
    for entity in ("Invoice", "Payment", "Customer", "Purchase", "Vendor"):
        assert books.all(entity) == [], entity
    assert writes(fake_quickbooks) == []


# -- paid invoice: the US keeps the non-taxable rule -------------------------------------------------------


@IN_US
def test_us_paid_invoice_with_a_taxed_line_is_taxable_lines_not_allowed(
    app, portal, fake_quickbooks, books, action_for
):
    payment = seed_payment(portal, fake_quickbooks, lines=taxed_lines(Decimal("8.25")))

    message = failed(paid_invoice(action_for, payment.payment_id), "TAXABLE_LINES_NOT_ALLOWED")

    assert "Widget" in message and "setup SERVICE" not in message
    assert_nothing_written(books, fake_quickbooks)


@IN_US
def test_us_paid_invoice_of_untaxed_lines_is_non_taxable_and_paid_in_full(portal, fake_quickbooks, books, action_for):
    payment = seed_home_payment(portal, fake_quickbooks, books)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    qbo_payment = books.get("Payment", fields["quickbooks_payment_id"])
    assert line_tax_codes(invoice) == ["NON", "NON"]
    assert amount(invoice["TotalAmt"]) == amount(qbo_payment["TotalAmt"]) == Decimal(450)
    assert qbo_payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert amount(invoice["Balance"]) == 0


# -- paid invoice: taxed lines outside the US --------------------------------------------------------------


@OUTSIDE_US
def test_taxed_paid_invoice_lines_carry_the_mapped_tax_codes(app, portal, fake_quickbooks, books, action_for):
    map_standard_tax_codes(app, books)
    payment = seed_taxed_payment(portal, fake_quickbooks, books)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    assert line_tax_codes(invoice) == [standard_code_id(books), untaxed_code_id(books)]
    assert [amount(line["Amount"]) for line in item_lines(invoice)] == [200, 250]  # lines stay net
    assert amount(invoice["TxnTaxDetail"]["TotalTax"]) == 2 * standard_rate(books)  # 200 × rate %


@OUTSIDE_US
def test_taxed_paid_invoice_payment_covers_the_total_with_tax(app, portal, fake_quickbooks, books, action_for):
    map_standard_tax_codes(app, books)
    payment = seed_taxed_payment(portal, fake_quickbooks, books)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    qbo_payment = books.get("Payment", fields["quickbooks_payment_id"])
    assert amount(invoice["TotalAmt"]) == total_with_tax(books)  # 490 GB, 476 CA, 470 AU
    assert amount(qbo_payment["TotalAmt"]) == amount(qbo_payment["Line"][0]["Amount"]) == total_with_tax(books)
    assert qbo_payment["Line"][0]["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    assert amount(invoice["Balance"]) == 0


@OUTSIDE_US
@pytest.mark.parametrize("cent", ["0.01", "-0.01"], ids=["cent over", "cent under"])
def test_payment_a_cent_off_the_total_with_tax_is_accepted_and_noted(
    app, portal, fake_quickbooks, books, action_for, cent
):
    map_standard_tax_codes(app, books)
    paid = total_with_tax(books) + Decimal(cent)
    payment = seed_taxed_payment(portal, fake_quickbooks, books, paid=paid)

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    qbo_payment = books.get("Payment", fields["quickbooks_payment_id"])
    assert amount(qbo_payment["TotalAmt"]) == amount(invoice["TotalAmt"]) == total_with_tax(books)
    assert amount(invoice["Balance"]) == 0
    [execution] = stored_executions(app)
    assert any(
        f"is for {paid:.2f}" in note and f"total with tax is {total_with_tax(books):.2f}" in note
        for note in execution.notes
    ), execution.notes


@OUTSIDE_US
@pytest.mark.parametrize("off_by", ["0.02", "-0.02", "-tax"], ids=["2 cents over", "2 cents under", "without tax"])
def test_payment_more_than_a_cent_off_the_total_with_tax_is_payment_amount_mismatch(
    app, portal, fake_quickbooks, books, action_for, off_by
):
    map_standard_tax_codes(app, books)
    paid = Decimal(450) if off_by == "-tax" else total_with_tax(books) + Decimal(off_by)
    payment = seed_taxed_payment(portal, fake_quickbooks, books, paid=paid)

    message = failed(paid_invoice(action_for, payment.payment_id), "PAYMENT_AMOUNT_MISMATCH")

    assert f"{paid:.2f}" in message
    assert f"{total_with_tax(books):.2f}" in message
    assert_nothing_written(books, fake_quickbooks)


@OUTSIDE_US
def test_paid_invoice_with_an_unmapped_rate_is_tax_code_missing(app, portal, fake_quickbooks, books, action_for):
    map_standard_tax_codes(app, books)  # maps the standard rate only
    payment = seed_home_payment(portal, fake_quickbooks, books, lines=taxed_lines(Decimal(7)), hs_initial_amount="464")

    message = failed(paid_invoice(action_for, payment.payment_id), "TAX_CODE_MISSING")

    assert "Widget" in message and "7%" in message and "tax_codes" in message
    assert_nothing_written(books, fake_quickbooks)


# -- paid invoice: currencies ------------------------------------------------------------------------------


@EVERY_COUNTRY
def test_paid_invoice_in_a_foreign_currency_without_multicurrency_is_currency_mismatch(
    app, portal, fake_quickbooks, books, action_for
):
    map_standard_tax_codes(app, books)
    payment = seed_home_payment(portal, fake_quickbooks, books, hs_currency_code="EUR")

    message = failed(paid_invoice(action_for, payment.payment_id), "CURRENCY_MISMATCH")

    assert "EUR" in message and HOME_CURRENCY[books.country] in message
    assert_nothing_written(books, fake_quickbooks)


@EVERY_COUNTRY
def test_paid_invoice_in_an_enabled_currency_is_invoiced_and_paid_in_it(
    app, portal, fake_quickbooks, books, action_for
):
    map_standard_tax_codes(app, books)
    books.enable_currency("EUR")
    payment = seed_home_payment(portal, fake_quickbooks, books, hs_currency_code="EUR")

    fields = succeeded(paid_invoice(action_for, payment.payment_id))

    invoice = books.get("Invoice", fields["quickbooks_document_id"])
    qbo_payment = books.get("Payment", fields["quickbooks_payment_id"])
    customer = books.get("Customer", fields["quickbooks_customer_id"])
    assert invoice["CurrencyRef"]["value"] == "EUR"
    assert qbo_payment["CurrencyRef"]["value"] == "EUR"
    assert customer["CurrencyRef"]["value"] == "EUR"
    assert amount(qbo_payment["TotalAmt"]) == amount(invoice["TotalAmt"]) == Decimal(450)
    assert amount(invoice["Balance"]) == 0


@EVERY_COUNTRY
def test_paid_invoice_in_a_currency_not_enabled_is_currency_not_enabled(
    app, portal, fake_quickbooks, books, action_for
):
    map_standard_tax_codes(app, books)
    books.enable_currency("EUR")  # multicurrency on, but JPY never added
    payment = seed_home_payment(portal, fake_quickbooks, books, hs_currency_code="JPY")

    message = failed(paid_invoice(action_for, payment.payment_id), "CURRENCY_NOT_ENABLED")

    assert "JPY" in message
    assert_nothing_written(books, fake_quickbooks)


# -- fee expense -------------------------------------------------------------------------------------------


@EVERY_COUNTRY
def test_fee_expense_is_booked_in_the_home_currency(app, portal, fake_quickbooks, books, expense_for):
    map_standard_tax_codes(app, books)
    payment = seed_home_payment(portal, fake_quickbooks, books)

    fields = succeeded(expense_for(payment.payment_id))

    purchase = books.get("Purchase", fields["quickbooks_document_id"])
    [line] = purchase["Line"]
    assert amount(line["Amount"]) == amount(purchase["TotalAmt"]) == Decimal("13.35")
    assert purchase["AccountRef"]["value"] == account_id(books, "Checking")
    [vendor] = books.all("Vendor")
    assert vendor["DisplayName"] == "HubSpot Payments"
    assert purchase["EntityRef"]["value"] == vendor["Id"]
    assert purchase["CurrencyRef"]["value"] == HOME_CURRENCY[books.country]


@OUTSIDE_US
def test_fee_expense_line_carries_the_default_tax_code(app, portal, fake_quickbooks, books, expense_for):
    map_standard_tax_codes(app, books)
    payment = seed_home_payment(portal, fake_quickbooks, books)

    fields = succeeded(expense_for(payment.payment_id))

    [line] = books.get("Purchase", fields["quickbooks_document_id"])["Line"]
    assert line["AccountBasedExpenseLineDetail"]["TaxCodeRef"] == {"value": untaxed_code_id(books)}


@IN_US
def test_us_fee_expense_line_names_no_tax_code(app, portal, fake_quickbooks, books, expense_for):
    payment = seed_home_payment(portal, fake_quickbooks, books)

    succeeded(expense_for(payment.payment_id))

    [sent_line] = fake_quickbooks.requests_to("POST", "/purchase")[-1].json["Line"]
    assert "TaxCodeRef" not in sent_line["AccountBasedExpenseLineDetail"]


@EVERY_COUNTRY
def test_eur_fee_paid_from_a_eur_account_is_paid_to_a_eur_payments_vendor(
    app, portal, fake_quickbooks, books, expense_for
):
    map_standard_tax_codes(app, books)
    books.enable_currency("EUR")
    euro_bank = books.add_account("Euro bank", "Bank", CurrencyRef={"value": "EUR"})
    payment = seed_home_payment(portal, fake_quickbooks, books, hs_currency_code="EUR")

    fields = succeeded(expense_for(payment.payment_id, payment_account=str(euro_bank["Id"])))

    purchase = books.get("Purchase", fields["quickbooks_document_id"])
    assert purchase["CurrencyRef"]["value"] == "EUR"
    assert purchase["AccountRef"]["value"] == str(euro_bank["Id"])
    assert amount(purchase["TotalAmt"]) == Decimal("13.35")
    [vendor] = books.all("Vendor")
    assert vendor["DisplayName"] == "HubSpot Payments (EUR)"
    assert vendor["CurrencyRef"]["value"] == "EUR"
    assert purchase["EntityRef"]["value"] == vendor["Id"]


@EVERY_COUNTRY
def test_second_eur_fee_reuses_the_eur_payments_vendor(app, portal, fake_quickbooks, books, expense_for):
    map_standard_tax_codes(app, books)
    books.enable_currency("EUR")
    euro_bank = str(books.add_account("Euro bank", "Bank", CurrencyRef={"value": "EUR"})["Id"])
    first_payment = seed_home_payment(portal, fake_quickbooks, books, hs_currency_code="EUR")
    second_payment = add_payment(portal, {"hs_currency_code": "EUR", "hs_reference_number": "HSP-9Q8W7"})
    first = books.get(
        "Purchase",
        succeeded(expense_for(first_payment.payment_id, payment_account=euro_bank))["quickbooks_document_id"],
    )
    fake_quickbooks.reset_requests()

    fields = succeeded(expense_for(second_payment, payment_account=euro_bank))

    second = books.get("Purchase", fields["quickbooks_document_id"])
    assert second["Id"] != first["Id"]
    assert second["EntityRef"]["value"] == first["EntityRef"]["value"]
    assert second["CurrencyRef"]["value"] == "EUR"
    assert [v["DisplayName"] for v in books.all("Vendor")] == ["HubSpot Payments (EUR)"]
    assert "POST /vendor" not in quickbooks_calls(fake_quickbooks)


@EVERY_COUNTRY
def test_eur_fee_paid_from_a_home_currency_account_is_currency_mismatch(
    app, portal, fake_quickbooks, books, expense_for
):
    map_standard_tax_codes(app, books)
    books.enable_currency("EUR")
    payment = seed_home_payment(portal, fake_quickbooks, books, hs_currency_code="EUR")

    message = failed(expense_for(payment.payment_id), "CURRENCY_MISMATCH")  # paid from Checking

    assert "EUR" in message and HOME_CURRENCY[books.country] in message
    assert "Checking" in message
    assert_nothing_written(books, fake_quickbooks)


@EVERY_COUNTRY
def test_eur_fee_without_multicurrency_is_currency_mismatch(app, portal, fake_quickbooks, books, expense_for):
    map_standard_tax_codes(app, books)
    payment = seed_home_payment(portal, fake_quickbooks, books, hs_currency_code="EUR")

    message = failed(expense_for(payment.payment_id), "CURRENCY_MISMATCH")

    assert "EUR" in message and HOME_CURRENCY[books.country] in message
    assert_nothing_written(books, fake_quickbooks)
