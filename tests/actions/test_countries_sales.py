"""Issue 14: invoices, estimates, sales receipts and refund receipts for US, UK, Canadian and Australian companies.

Tax: TAX/NON lines in the US (QuickBooks works the tax out at company.ast_rate), mapped TaxCodes elsewhere
(tax_codes by rate or rate group, default_tax_code or the tax_code input for untaxed lines), prices with or
without tax, HubSpot's total with tax against QuickBooks', and TAX_CODE_MISSING before anything is written.
Currencies: the record's currency against the company's home currency and multicurrency, and one QuickBooks
customer per currency.
"""

from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.actions.test_call_costs import described_quickbooks_calls
from tests.scenarios import (
    PAYMENT_PROPERTIES,
    STANDARD_TAX,
    UNTAXED_TAX_CODE,
    account_id,
    add_contact,
    add_line_items,
    configure,
    map_standard_tax_codes,
    quickbooks_calls,
    seed_products,
    stored_executions,
)

COUNTRIES = ["US", "GB", "CA", "AU"]
ABROAD = ["GB", "CA", "AU"]
HOME_CURRENCY = {"US": "USD", "GB": "GBP", "CA": "CAD", "AU": "AUD"}
ENTITIES = {
    "create_invoice": "Invoice",
    "create_estimate": "Estimate",
    "create_sales_receipt": "SalesReceipt",
    "create_refund_receipt": "RefundReceipt",
}
ACTION_RECORDS = [
    ("create_invoice", "DEAL"),
    ("create_estimate", "DEAL"),
    ("create_estimate", "QUOTE"),
    ("create_sales_receipt", "DEAL"),
    ("create_sales_receipt", "COMMERCE_PAYMENT"),
    ("create_refund_receipt", "COMMERCE_PAYMENT"),
]
CRM_TYPES = {"DEAL": "deals", "QUOTE": "quotes", "COMMERCE_PAYMENT": "commerce_payments"}
CURRENCY_PROPERTIES = {"DEAL": "deal_currency_code", "QUOTE": "hs_currency", "COMMERCE_PAYMENT": "hs_currency_code"}
ANN = {"email": "ann.lee@acme.test", "firstname": "Ann", "lastname": "Lee"}
QUERIES = ("POST /query", "POST /batch", "GET /query")

# The taxed line: 2 × 100 at the country's standard rate (US: the automated sales tax rate, 8.25%).
RATE = {"US": "8.25", "GB": "20", "CA": "13", "AU": "10"}
TAX_ON_200 = {"US": "16.50", "GB": "40.00", "CA": "26.00", "AU": "20.00"}


def taxed_line(country, **extra) -> dict:
    return {
        "name": "Widget",
        "hs_sku": "W-1",
        "quantity": "2",
        "price": "100",
        "amount": "200",
        "hs_product_id": "501",
        "hs_tax_rate": RATE[country],
        "hs_tax_amount": TAX_ON_200[country],
        **extra,
    }


UNTAXED_LINE = {"name": "setup SERVICE", "quantity": "1", "price": "250", "amount": "250", "hs_product_id": "502"}


def widget(amount, **tax) -> dict:
    """One Widget line of `amount` (quantity 1) with these HubSpot tax properties."""
    return {"name": "Widget", "hs_sku": "W-1", "quantity": "1", "price": amount, "amount": amount, **tax}


@pytest.fixture
def items(fake_quickbooks):
    """QuickBooks' Widget (SKU W-1) and Setup service."""
    return seed_products(fake_quickbooks)


@pytest.fixture
def make_record(portal, items):
    """make_record(action, object_type, lines, currency=...): a record the action takes, billed to Ann Lee.

    Payments are paid (refunded in full for a refund receipt) for the lines' total; currency "" leaves the
    record without one. contact_id bills an existing contact instead of a new one.
    """

    def make(action, object_type, lines, *, currency="", contact_id=None) -> str:
        crm_type = CRM_TYPES[object_type]
        total = str(sum((Decimal(line["amount"]) for line in lines), Decimal(0)))
        properties = {
            "DEAL": {"dealname": "Acme rollout", "amount": total, "closedate": "2026-11-30"},
            "QUOTE": {"hs_title": "Acme quote", "hs_quote_amount": total, "hs_esign_date": "2026-10-07"},
            "COMMERCE_PAYMENT": {**PAYMENT_PROPERTIES, "hs_initial_amount": total},
        }[object_type]
        if action == "create_refund_receipt":
            properties |= {"hs_latest_status": "refunded", "hs_refunds_amount": total}
        properties[CURRENCY_PROPERTIES[object_type]] = currency
        record_id = portal.add(crm_type, properties)
        add_line_items(portal, crm_type, record_id, lines)
        if contact_id:
            portal.associate(crm_type, record_id, "contacts", contact_id)
        else:
            add_contact(portal, record_id, object_type=crm_type, **ANN)
        return str(record_id)

    return make


@pytest.fixture
def run(action_for, books):
    """Run the action on a record; a refund receipt is paid from Checking."""

    def run_action(action, object_type, record_id, **inputs) -> dict:
        if action == "create_refund_receipt":
            inputs.setdefault("payment_account", account_id(books, "Checking"))
        return action_for(action, record_id, object_type, **inputs)

    return run_action


def document_of(books, action, fields) -> dict:
    assert fields["hs_execution_state"] == "SUCCESS", fields
    document = books.get(ENTITIES[action], fields["quickbooks_document_id"])
    assert document is not None, fields
    return document


def failed(fields, code) -> str:
    assert (fields["hs_execution_state"], fields["error_code"]) == ("FAIL_CONTINUE", code), fields
    return fields["error_message"]


def sent(fake_quickbooks, action) -> dict:
    """The one document body the action sent QuickBooks."""
    [request] = fake_quickbooks.requests_to("POST", f"/{ENTITIES[action].lower()}")
    return request.json


def tax_codes(document) -> list[str]:
    return [
        str(line["SalesItemLineDetail"]["TaxCodeRef"]["value"])
        for line in document["Line"]
        if line["DetailType"] == "SalesItemLineDetail"
    ]


def item_lines(document) -> list[dict]:
    return [line for line in document["Line"] if line["DetailType"] == "SalesItemLineDetail"]


def cents(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def code_id(books, name) -> str:
    return str(books.tax_code_named(name)["Id"])


def standard_codes(books) -> list[str]:
    """The TaxCodeRefs of the taxed and the untaxed line."""
    if books.country == "US":
        return ["TAX", "NON"]
    return [code_id(books, STANDARD_TAX[books.country][1]), code_id(books, UNTAXED_TAX_CODE[books.country])]


def nothing_written(fake_quickbooks, books) -> None:
    writes = [call for call in quickbooks_calls(fake_quickbooks) if not call.startswith("GET") and call not in QUERIES]
    assert writes == []
    assert books.all("Customer") == []
    for entity in ENTITIES.values():
        assert books.all(entity) == []


def total_notes(app) -> list[str]:
    return [note for note in stored_executions(app)[-1].notes if "total with tax" in note]


# -- tax: a taxed and an untaxed line in every country ------------------------------------------------------


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_taxed_and_an_untaxed_line_get_the_countrys_tax_codes_and_quickbooks_tax(
    app, fake_quickbooks, books, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE])

    document = document_of(books, action, run(action, object_type, record_id))

    assert tax_codes(document) == standard_codes(books)
    assert cents(document["TxnTaxDetail"]["TotalTax"]) == Decimal(TAX_ON_200[country])
    assert cents(document["TotalAmt"]) == 450 + Decimal(TAX_ON_200[country])
    assert sent(fake_quickbooks, action).get("GlobalTaxCalculation") == (None if country == "US" else "TaxExcluded")
    assert total_notes(app) == []  # HubSpot's total with tax is QuickBooks' to the cent


# -- US: TAX or NON ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tax",
    [{"hs_tax_rate": "8.25"}, {"hs_tax_amount": "16.50"}, {"hs_tax_rate_group_id": "tg-17"}],
    ids=["rate", "amount", "group"],
)
@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
def test_a_us_line_with_any_hubspot_tax_is_tax_and_quickbooks_taxes_it(
    books, make_record, run, action, object_type, tax
):
    lines = [{**widget("200"), **tax}, UNTAXED_LINE]
    record_id = make_record(action, object_type, lines)

    document = document_of(books, action, run(action, object_type, record_id))

    assert tax_codes(document) == ["TAX", "NON"]
    assert cents(document["TxnTaxDetail"]["TotalTax"]) == Decimal("16.50")  # 8.25% of 200
    assert cents(document["TotalAmt"]) == Decimal("466.50")


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
def test_a_us_line_of_a_taxable_item_is_tax_without_hubspot_tax(books, make_record, run, action, object_type):
    books.add_item(Name="Gadget", Sku="G-1", Type="Service", UnitPrice=100, Taxable=True)
    gadget = {"name": "Gadget", "hs_sku": "G-1", "quantity": "2", "price": "100", "amount": "200"}
    record_id = make_record(action, object_type, [gadget, UNTAXED_LINE])

    document = document_of(books, action, run(action, object_type, record_id))

    assert tax_codes(document) == ["TAX", "NON"]
    assert cents(document["TxnTaxDetail"]["TotalTax"]) == Decimal("16.50")
    assert cents(document["TotalAmt"]) == Decimal("466.50")


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
def test_us_lines_without_tax_or_taxable_item_are_non_and_untaxed(books, make_record, run, action, object_type):
    record_id = make_record(action, object_type, [widget("200"), UNTAXED_LINE])

    document = document_of(books, action, run(action, object_type, record_id))

    assert tax_codes(document) == ["NON", "NON"]
    assert cents(document["TxnTaxDetail"]["TotalTax"]) == 0
    assert cents(document["TotalAmt"]) == Decimal("450.00")


def test_us_companies_ignore_prices_include_tax(app, fake_quickbooks, books, make_record, run):
    configure(app, prices_include_tax="on")
    record_id = make_record("create_invoice", "DEAL", [taxed_line("US"), UNTAXED_LINE])

    document = document_of(books, "create_invoice", run("create_invoice", "DEAL", record_id))

    assert "GlobalTaxCalculation" not in sent(fake_quickbooks, "create_invoice")
    assert [float(line["Amount"]) for line in item_lines(document)] == [200.0, 250.0]
    assert cents(document["TotalAmt"]) == Decimal("466.50")


# -- elsewhere: the mapped tax codes -------------------------------------------------------------------------


@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_a_line_is_mapped_by_its_tax_rate_group_before_its_rate(app, books, make_record, run, country):
    reduced = books.add_tax_code("Reduced 5%", 5)["Id"]  # another rate than the line's
    settings = map_standard_tax_codes(app, books)
    configure(app, company={"tax_codes": {**settings["tax_codes"], "tg-17": reduced}})
    record_id = make_record("create_invoice", "DEAL", [taxed_line(country, hs_tax_rate_group_id="tg-17")])

    document = document_of(books, "create_invoice", run("create_invoice", "DEAL", record_id))

    assert tax_codes(document) == [reduced]
    assert cents(document["TxnTaxDetail"]["TotalTax"]) == Decimal("10.00")  # 5% of 200


@pytest.mark.parametrize("mapped, line_rate", [("{rate}.0", "{rate}"), ("{rate}", "{rate}.00")])
@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_a_rate_spelled_with_decimals_is_the_same_key(app, books, make_record, run, country, mapped, line_rate):
    rate, name = STANDARD_TAX[country]
    configure(
        app,
        company={
            "tax_codes": {mapped.format(rate=rate): code_id(books, name)},
            "default_tax_code": code_id(books, UNTAXED_TAX_CODE[country]),
        },
    )
    line = taxed_line(country, hs_tax_rate=line_rate.format(rate=rate))
    record_id = make_record("create_invoice", "DEAL", [line, UNTAXED_LINE])

    document = document_of(books, "create_invoice", run("create_invoice", "DEAL", record_id))

    assert tax_codes(document) == standard_codes(books)
    assert cents(document["TotalAmt"]) == 450 + Decimal(TAX_ON_200[country])


@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_a_line_with_only_a_tax_amount_is_mapped_by_the_rate_it_implies(app, books, make_record, run, country):
    map_standard_tax_codes(app, books)
    line = widget("200", hs_tax_amount=TAX_ON_200[country])  # 40 on 200: 20%
    record_id = make_record("create_invoice", "DEAL", [line, UNTAXED_LINE])

    document = document_of(books, "create_invoice", run("create_invoice", "DEAL", record_id))

    assert tax_codes(document) == standard_codes(books)


OTHER_UNTAXED_CODE = {"GB": "Exempt", "CA": "Exempt", "AU": "Out of Scope"}


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_the_tax_code_input_overrides_default_tax_code_for_untaxed_lines(
    app, books, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    chosen = code_id(books, OTHER_UNTAXED_CODE[country])
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE])

    document = document_of(books, action, run(action, object_type, record_id, tax_code=chosen))

    assert tax_codes(document) == [code_id(books, STANDARD_TAX[country][1]), chosen]


# -- prices that include tax ---------------------------------------------------------------------------------

# 3 × 40 = 120 with tax: (net, tax on the net, total with the untaxed 250)
INCLUSIVE = {
    "GB": ("100.00", "20.00", "370.00"),
    "CA": ("106.19", "13.80", "369.99"),
    "AU": ("109.09", "10.91", "370.00"),
}


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_prices_including_tax_send_net_lines_with_hubspots_amount_as_tax_inclusive(
    app, fake_quickbooks, books, make_record, run, country, action, object_type
):
    configure(app, prices_include_tax="on")
    map_standard_tax_codes(app, books)
    gross = {"name": "Widget", "hs_sku": "W-1", "quantity": "3", "price": "40", "amount": "120"}
    record_id = make_record(action, object_type, [{**gross, "hs_tax_rate": RATE[country]}, UNTAXED_LINE])
    net, tax, total = (Decimal(value) for value in INCLUSIVE[country])

    document = document_of(books, action, run(action, object_type, record_id))

    assert sent(fake_quickbooks, action)["GlobalTaxCalculation"] == "TaxInclusive"
    taxed, untaxed = item_lines(document)
    detail = taxed["SalesItemLineDetail"]
    assert cents(taxed["Amount"]) == net
    assert detail["TaxInclusiveAmt"] == 120.0
    assert detail["Qty"] == 3
    assert cents(Decimal(str(detail["Qty"])) * Decimal(str(detail["UnitPrice"]))) == net
    assert (cents(untaxed["Amount"]), untaxed["SalesItemLineDetail"]["TaxInclusiveAmt"]) == (Decimal(250), 250.0)
    assert tax_codes(document) == standard_codes(books)
    assert cents(document["TxnTaxDetail"]["TotalTax"]) == tax
    assert cents(document["TotalAmt"]) == total


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", ["CA"], indirect=True)
def test_prices_including_tax_note_quickbooks_total_a_cent_off_hubspots(
    app, books, make_record, run, country, action, object_type
):
    configure(app, prices_include_tax="on")
    map_standard_tax_codes(app, books)
    gross = {"name": "Widget", "hs_sku": "W-1", "quantity": "3", "price": "40", "amount": "120"}
    lines = [{**gross, "hs_tax_rate": "13", "hs_tax_amount": "13.81"}, UNTAXED_LINE]  # HubSpot: 370.00 with tax
    record_id = make_record(action, object_type, lines)

    document = document_of(books, action, run(action, object_type, record_id))

    assert cents(document["TotalAmt"]) == Decimal("369.99")  # 106.19 + 13.80 + 250
    [note] = total_notes(app)
    assert "is 369.99; HubSpot's is 370.00 (-0.01)" in note


# -- HubSpot's total with tax against QuickBooks' --------------------------------------------------------------


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", ["GB"], indirect=True)
def test_hubspot_and_quickbooks_agree_on_three_lines_of_5_cents_at_20_percent(
    app, books, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    lines = [widget("0.05", hs_tax_rate="20", hs_tax_amount="0.01")] * 3  # HubSpot: 0.03; QuickBooks: 20% of 0.15
    record_id = make_record(action, object_type, lines)

    document = document_of(books, action, run(action, object_type, record_id))

    assert cents(document["TxnTaxDetail"]["TotalTax"]) == Decimal("0.03")
    assert cents(document["TotalAmt"]) == Decimal("0.18")
    assert total_notes(app) == []


# lines: (amount, hs_tax_amount) × 3 at the standard rate → (QuickBooks' tax, QuickBooks' total, HubSpot's total)
ROUNDING_CASES = [
    ("GB", ("0.02", "0"), ("0.01", "0.07", "0.06")),  # HubSpot 0.004 → 0 per line; QuickBooks 20% of 0.06 = 0.012
    ("CA", ("0.02", "0"), ("0.01", "0.07", "0.06")),  # 13% of 0.06 = 0.0078
    ("AU", ("0.02", "0"), ("0.01", "0.07", "0.06")),  # 10% of 0.06 = 0.006
    ("CA", ("0.05", "0.01"), ("0.02", "0.17", "0.18")),  # HubSpot 0.0065 → 0.01 per line; 13% of 0.15 = 0.0195
    ("AU", ("0.05", "0.01"), ("0.02", "0.17", "0.18")),  # HubSpot 0.005 → 0.01 per line; 10% of 0.15 = 0.015
]


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country, line, expected", ROUNDING_CASES, indirect=["country"])
def test_a_cent_of_rounding_between_hubspot_and_quickbooks_is_noted_and_the_document_stands(
    app, books, make_record, run, country, line, expected, action, object_type
):
    map_standard_tax_codes(app, books)
    amount, tax_amount = line
    tax, quickbooks, hubspot = expected
    lines = [widget(amount, hs_tax_rate=RATE[country], hs_tax_amount=tax_amount)] * 3
    record_id = make_record(action, object_type, lines)

    document = document_of(books, action, run(action, object_type, record_id))

    assert cents(document["TxnTaxDetail"]["TotalTax"]) == Decimal(tax)
    assert cents(document["TotalAmt"]) == Decimal(quickbooks)
    difference = Decimal(quickbooks) - Decimal(hubspot)
    [note] = total_notes(app)
    assert f"is {quickbooks}; HubSpot's is {hubspot} ({difference:+})" in note


# -- TAX_CODE_MISSING: nothing is written ----------------------------------------------------------------------


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_a_rate_without_a_mapping_is_tax_code_missing_and_nothing_is_written(
    app, fake_quickbooks, books, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    gizmo = {"name": "Gizmo", "quantity": "1", "price": "70", "amount": "70", "hs_tax_rate": "7"}  # a new product
    record_id = make_record(action, object_type, [taxed_line(country), gizmo, UNTAXED_LINE])
    items_before = len(books.all("Item"))

    message = failed(run(action, object_type, record_id, create_missing_products="true"), "TAX_CODE_MISSING")

    assert "'Gizmo'" in message and "7%" in message and "tax_codes" in message
    assert len(books.all("Item")) == items_before
    nothing_written(fake_quickbooks, books)


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_a_rate_mapped_to_an_inactive_tax_code_is_tax_code_missing_and_nothing_is_written(
    app, fake_quickbooks, books, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    standard = code_id(books, STANDARD_TAX[country][1])
    books.patch("TaxCode", standard, Active=False)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE])

    message = failed(run(action, object_type, record_id), "TAX_CODE_MISSING")

    assert "'Widget'" in message and f"{RATE[country]}%" in message
    assert f"TaxCode {standard}" in message and "inactive" in message and "tax_codes" in message
    nothing_written(fake_quickbooks, books)


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_an_untaxed_line_without_default_tax_code_is_tax_code_missing_and_nothing_is_written(
    app, fake_quickbooks, books, make_record, run, country, action, object_type
):
    rate, name = STANDARD_TAX[country]
    configure(app, company={"tax_codes": {rate: code_id(books, name)}})
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE])

    message = failed(run(action, object_type, record_id), "TAX_CODE_MISSING")

    assert "'setup SERVICE'" in message and "default_tax_code" in message
    nothing_written(fake_quickbooks, books)


# -- currencies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_record_without_currency_is_in_the_home_currency(app, books, make_record, run, country, action, object_type):
    map_standard_tax_codes(app, books)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE], currency="")

    document = document_of(books, action, run(action, object_type, record_id))

    assert document["CurrencyRef"]["value"] == HOME_CURRENCY[country]


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_foreign_currency_record_without_multicurrency_is_currency_mismatch_and_nothing_is_written(
    app, fake_quickbooks, books, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE], currency="EUR")

    message = failed(run(action, object_type, record_id), "CURRENCY_MISMATCH")

    assert "EUR" in message and HOME_CURRENCY[country] in message
    nothing_written(fake_quickbooks, books)


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_with_multicurrency_a_eur_record_makes_a_eur_document_for_a_eur_customer(
    app, books, make_record, run, country, action, object_type
):
    books.enable_currency("EUR")
    map_standard_tax_codes(app, books)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE], currency="EUR")

    document = document_of(books, action, run(action, object_type, record_id))

    assert document["CurrencyRef"]["value"] == "EUR"
    customer = books.get("Customer", document["CustomerRef"]["value"])
    assert (customer["DisplayName"], customer["CurrencyRef"]["value"]) == ("Ann Lee", "EUR")
    assert tax_codes(document) == standard_codes(books)
    assert cents(document["TotalAmt"]) == 450 + Decimal(TAX_ON_200[country])


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_currency_the_company_has_not_enabled_is_currency_not_enabled_and_nothing_is_written(
    app, fake_quickbooks, books, make_record, run, country, action, object_type
):
    books.enable_currency("EUR")
    map_standard_tax_codes(app, books)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE], currency="JPY")

    message = failed(run(action, object_type, record_id), "CURRENCY_NOT_ENABLED")

    assert "JPY" in message
    nothing_written(fake_quickbooks, books)
    assert books.company_currency("JPY") is None


@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_currency_made_inactive_in_quickbooks_is_currency_not_enabled(
    app, fake_quickbooks, books, make_record, run, country
):
    books.enable_currency("EUR")
    books.enable_currency("EUR", active=False)
    map_standard_tax_codes(app, books)
    record_id = make_record("create_invoice", "DEAL", [taxed_line(country), UNTAXED_LINE], currency="EUR")

    message = failed(run("create_invoice", "DEAL", record_id), "CURRENCY_NOT_ENABLED")

    assert "EUR" in message
    nothing_written(fake_quickbooks, books)


@pytest.mark.parametrize("currency", ["home", ""], ids=["home currency", "no currency"])
@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_with_multicurrency_a_home_currency_record_names_the_home_currency(
    app, fake_quickbooks, books, make_record, run, country, action, object_type, currency
):
    books.enable_currency("EUR")
    map_standard_tax_codes(app, books)
    home = HOME_CURRENCY[country]
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE], currency=home if currency else "")

    document = document_of(books, action, run(action, object_type, record_id))

    assert sent(fake_quickbooks, action)["CurrencyRef"]["value"] == home
    assert document["CurrencyRef"]["value"] == home
    assert books.get("Customer", document["CustomerRef"]["value"])["CurrencyRef"]["value"] == home


# -- one QuickBooks customer per currency ----------------------------------------------------------------------


@pytest.fixture
def ann_in_home_currency(books):
    """Ann Lee's QuickBooks customer (same email), in the home currency; the company also takes EUR."""
    books.enable_currency("EUR")
    return books.add_customer(
        DisplayName="Ann Lee", GivenName="Ann", FamilyName="Lee", PrimaryEmailAddr="ann.lee@acme.test"
    )


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_eur_record_of_a_home_currency_customer_gets_a_new_eur_customer_named_with_the_currency(
    app, portal, books, ann_in_home_currency, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE], currency="EUR")

    document = document_of(books, action, run(action, object_type, record_id))

    customer = books.get("Customer", document["CustomerRef"]["value"])
    assert customer["Id"] != ann_in_home_currency["Id"]
    assert (customer["DisplayName"], customer["CurrencyRef"]["value"]) == ("Ann Lee (EUR)", "EUR")
    assert customer["PrimaryEmailAddr"]["Address"] == "ann.lee@acme.test"
    assert document["CurrencyRef"]["value"] == "EUR"
    home = books.get("Customer", ann_in_home_currency["Id"])
    assert home["CurrencyRef"]["value"] == HOME_CURRENCY[country]


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_the_eur_customer_is_remembered_and_home_currency_records_keep_the_original(
    app, portal, books, ann_in_home_currency, make_record, run, country, action, object_type
):
    map_standard_tax_codes(app, books)
    contact_id = portal.add("contacts", ANN)
    lines = [taxed_line(country), UNTAXED_LINE]

    def bill(currency):
        record_id = make_record(action, object_type, lines, currency=currency, contact_id=contact_id)
        return document_of(books, action, run(action, object_type, record_id))

    first = bill("EUR")
    # Edited in QuickBooks: no longer found by email, yet still remembered as Ann Lee's customer in EUR.
    books.patch("Customer", first["CustomerRef"]["value"], PrimaryEmailAddr={"Address": "ann@elsewhere.test"})
    home = bill("")
    second = bill("EUR")

    assert second["CustomerRef"]["value"] == first["CustomerRef"]["value"] != ann_in_home_currency["Id"]
    assert home["CustomerRef"]["value"] == ann_in_home_currency["Id"]
    assert (second["CurrencyRef"]["value"], home["CurrencyRef"]["value"]) == ("EUR", HOME_CURRENCY[country])
    assert sorted(c["DisplayName"] for c in books.all("Customer")) == ["Ann Lee", "Ann Lee (EUR)"]


@pytest.mark.parametrize("action, object_type", ACTION_RECORDS)
@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_customer_in_another_currency_is_currency_mismatch_when_conflicts_fail(
    app, fake_quickbooks, books, ann_in_home_currency, make_record, run, country, action, object_type
):
    configure(app, display_name_conflicts="fail")
    map_standard_tax_codes(app, books)
    record_id = make_record(action, object_type, [taxed_line(country), UNTAXED_LINE], currency="EUR")

    message = failed(run(action, object_type, record_id), "CURRENCY_MISMATCH")

    assert ann_in_home_currency["Id"] in message and "EUR" in message
    assert [c["Id"] for c in books.all("Customer")] == [ann_in_home_currency["Id"]]
    for entity in ENTITIES.values():
        assert books.all(entity) == []


# -- a company's first document: its preferences travel with its other reads -------------------------------------


def first_invoice_calls(fake_quickbooks, books, make_record, run, lines, currency="") -> tuple[dict, list[str]]:
    """Run one invoice with nothing kept for the company yet: the invoice, and the QuickBooks requests it made."""
    record_id = make_record("create_invoice", "DEAL", lines, currency=currency)
    fake_quickbooks.reset_requests()
    document = document_of(books, "create_invoice", run("create_invoice", "DEAL", record_id))
    return document, described_quickbooks_calls(fake_quickbooks)


@pytest.mark.parametrize("country", ABROAD, indirect=True)
def test_abroad_the_tax_tables_travel_with_the_preferences_and_are_kept(
    app, portal, fake_quickbooks, books, make_record, run, country
):
    map_standard_tax_codes(app, books)
    lines = [taxed_line(country), UNTAXED_LINE]

    document, calls = first_invoice_calls(fake_quickbooks, books, make_record, run, lines)
    [reads, *writes] = calls

    assert tax_codes(document) == standard_codes(books)
    assert writes == ["POST /customer", "POST /invoice"]
    assert reads.startswith("POST /batch [Preferences, ") and "TaxCode, TaxRate" in reads
    contact_id = portal.add("contacts", ANN)
    record_id = make_record("create_invoice", "DEAL", lines, contact_id=contact_id)
    fake_quickbooks.reset_requests()
    document_of(books, "create_invoice", run("create_invoice", "DEAL", record_id))
    assert quickbooks_calls(fake_quickbooks) == ["POST /batch", "POST /invoice"]  # only the new contact's lookup


@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_first_eur_document_asks_the_names_of_either_currency_at_once_then_takes_the_eur_ones(
    app, fake_quickbooks, books, ann_in_home_currency, make_record, run, country
):
    map_standard_tax_codes(app, books)

    document, calls = first_invoice_calls(
        fake_quickbooks, books, make_record, run, [taxed_line(country), UNTAXED_LINE], currency="EUR"
    )

    # The home currency comes with the batch: "Ann Lee" (home) and "Ann Lee (EUR)" (foreign) were both asked.
    assert [call.split(" [")[0] for call in calls] == ["POST /batch", "POST /customer", "POST /invoice"]
    assert "Preferences, CompanyCurrency" in calls[0]
    customer = books.get("Customer", document["CustomerRef"]["value"])
    assert (customer["DisplayName"], customer["CurrencyRef"]["value"]) == ("Ann Lee (EUR)", "EUR")


@pytest.mark.parametrize("country", COUNTRIES, indirect=True)
def test_a_first_document_named_in_the_home_currency_takes_the_home_customer_in_one_request(
    app, fake_quickbooks, books, ann_in_home_currency, make_record, run, country
):
    map_standard_tax_codes(app, books)
    lines = [taxed_line(country), UNTAXED_LINE]

    document, calls = first_invoice_calls(fake_quickbooks, books, make_record, run, lines, HOME_CURRENCY[country])

    assert [call.split(" [")[0] for call in calls] == ["POST /batch", "POST /invoice"]
    assert document["CustomerRef"]["value"] == ann_in_home_currency["Id"]


@pytest.mark.parametrize("country", ["US", "GB"], indirect=True)
def test_a_connection_without_its_country_asks_company_info_with_the_other_reads(
    app, connection, fake_quickbooks, books, make_record, run, country
):
    from app.extensions import db
    from app.storage.models import QuickBooksConnection

    with app.app_context():
        db.session.get(QuickBooksConnection, connection).country = ""  # connected before the country was stored
        db.session.commit()
    map_standard_tax_codes(app, books)

    document, calls = first_invoice_calls(fake_quickbooks, books, make_record, run, [taxed_line(country), UNTAXED_LINE])

    [reads, *writes] = calls
    assert reads.startswith("POST /batch [CompanyInfo, Preferences, ") and "TaxCode, TaxRate" in reads
    assert writes == ["POST /customer", "POST /invoice"]
    assert tax_codes(document) == standard_codes(books)
