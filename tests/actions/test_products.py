"""Line items → QuickBooks Items, end to end: match order in one request, misses, creation, one chosen product,
discounts, and what an invoice costs in QuickBooks calls cold and warm."""

from decimal import Decimal

import pytest

from app.extensions import db
from app.storage.connections import MappingStore
from tests.conftest import invoice_of
from tests.scenarios import configure, quickbooks_calls, seed_deal, stored_executions

PATH = "/hubspot/actions/create_invoice"


def item_lines(invoice) -> list[dict]:
    return [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]


def item_ids(invoice) -> list[str]:
    return [line["SalesItemLineDetail"]["ItemRef"]["value"] for line in item_lines(invoice)]


def item_lookups(fake_quickbooks) -> list:
    return [
        r
        for r in fake_quickbooks.requests
        if "from item" in (r.body or "").lower() or "from item" in str(r.query.get("query", "")).lower()
    ]


# -- matching ----------------------------------------------------------------------------------------------


def test_match_order_remembered_then_exact_sku_then_name_in_one_request(
    app, portal, connection, fake_quickbooks, books, invoice_for
):
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {"name": "Setup service", "hs_sku": "W-1", "quantity": "1", "price": "100", "amount": "100"},  # SKU wins
            {"name": "SETUP service", "quantity": "1", "price": "250", "amount": "250"},  # name, any case
            {
                "name": "Anything",
                "hs_sku": "W-1",
                "quantity": "1",
                "price": "100",
                "amount": "100",
                "hs_product_id": "777",
            },  # remembered wins over SKU
        ],
    )
    with app.app_context():
        MappingStore(db, connection).remember("product", "777", deal.service_id)
    fake_quickbooks.reset_requests()

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    assert item_ids(invoice) == [deal.widget_id, deal.service_id, deal.service_id]
    [lookup] = item_lookups(fake_quickbooks)
    assert lookup.path.endswith("/batch")  # with the customer's lookup: one request for every read
    queries = [item["Query"] for item in lookup.json["BatchItemRequest"] if "FROM Item" in item["Query"]]
    assert queries == [
        f"SELECT * FROM Item WHERE Id IN ('{deal.service_id}') MAXRESULTS 1000",
        "SELECT * FROM Item WHERE Sku IN ('W-1') MAXRESULTS 1000",
        "SELECT * FROM Item WHERE Name IN ('Anything', 'SETUP service', 'Setup service') MAXRESULTS 1000",
    ]


def test_sku_in_another_case_does_not_match(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {"name": "Gizmo", "hs_sku": "w-1", "quantity": "1", "price": "100", "amount": "100"},
        ],
    )

    fields = invoice_for(deal.deal_id)

    assert fields["error_code"] == "PRODUCT_NOT_FOUND"
    assert "'Gizmo' (SKU w-1)" in fields["error_message"]
    assert len(item_lookups(fake_quickbooks)) == 1
    assert books.all("Invoice") == [] and books.all("Customer") == []  # nothing written for a failing record


def test_product_not_found_names_every_unmatched_line(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {"name": "Widget", "hs_sku": "W-1", "quantity": "1", "price": "100", "amount": "100"},
            {"name": "Gadget", "hs_sku": "G-9", "quantity": "1", "price": "5", "amount": "5"},
            {"name": "Doohickey", "quantity": "1", "price": "7", "amount": "7"},
        ],
    )

    message = invoice_for(deal.deal_id)["error_message"]

    assert message.startswith("These line items have no matching QuickBooks product: 'Gadget' (SKU G-9), 'Doohickey'.")
    assert "set 'Create the product in QuickBooks if it doesn't exist' to Yes" in message


def test_remembered_item_made_inactive_is_matched_again(app, portal, connection, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    invoice_of(books, invoice_for(deal.deal_id))
    with app.app_context():
        assert MappingStore(db, connection).get("product", "501") == deal.widget_id
    books.patch("Item", deal.widget_id, Active=False)  # how QuickBooks deletes a product
    new_widget = books.add_item(Name="Widget v2", Sku="W-1", Type="Service", UnitPrice=100)
    fake_quickbooks.reset_requests()

    fields = invoice_for(deal.deal_id)

    invoice = invoice_of(books, fields)
    assert item_ids(invoice) == [new_widget["Id"], deal.service_id]
    # Written with the remembered items, refused (2500 on ItemRef), the items checked and matched again, written
    # once more; the customer, which QuickBooks did not refuse, stays as remembered.
    assert quickbooks_calls(fake_quickbooks) == ["POST /invoice", "POST /batch", "POST /invoice"]
    [check] = item_lookups(fake_quickbooks)
    assert all("FROM Item" in item["Query"] for item in check.json["BatchItemRequest"])
    writes = fake_quickbooks.requests_to("POST", "/invoice")
    assert writes[0].query["requestid"] != writes[1].query["requestid"]
    assert len(books.all("Invoice")) == 2  # the first execution's and this one's
    with app.app_context():
        assert MappingStore(db, connection).get("product", "501") == new_widget["Id"]
    notes = stored_executions(app)[1].notes
    assert any(f"QuickBooks product {deal.widget_id}, remembered for HubSpot product 501" in note for note in notes)
    assert any("QuickBooks refused the invoice" in n and "Resolving the remembered products again" in n for n in notes)


def test_remembered_item_that_no_longer_exists_refuses_the_write_once(
    app, portal, connection, fake_quickbooks, books, invoice_for
):
    deal = seed_deal(portal, fake_quickbooks)
    with app.app_context():  # remembered with its facts, then gone from QuickBooks
        MappingStore(db, connection).remember("product", "501", "99999", {"taxable": False})
    fake_quickbooks.reset_requests()

    fields = invoice_for(deal.deal_id)

    invoice = invoice_of(books, fields)
    assert item_ids(invoice) == [deal.widget_id, deal.service_id]
    writes = fake_quickbooks.requests_to("POST", "/invoice")
    assert [w.json["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"] for w in writes] == ["99999", deal.widget_id]
    assert [i["Id"] for i in books.all("Invoice")] == [fields["quickbooks_document_id"]]
    with app.app_context():
        assert MappingStore(db, connection).get("product", "501") == deal.widget_id
    assert any(
        "QuickBooks product 99999, remembered for HubSpot product 501" in note
        for note in stored_executions(app)[0].notes
    )


def test_a_remembered_taxable_item_keeps_its_lines_taxable(app, portal, fake_quickbooks, books, invoice_for):
    """US sales tax: a line is TAX when HubSpot taxed it or its Item is taxable; a warm run remembers which."""
    deal = seed_deal(portal, fake_quickbooks)
    books.patch("Item", deal.widget_id, Taxable=True)
    cold = invoice_of(books, invoice_for(deal.deal_id))
    fake_quickbooks.reset_requests()

    warm = invoice_of(books, invoice_for(deal.deal_id))

    assert quickbooks_calls(fake_quickbooks) == ["POST /invoice"]
    for invoice in (cold, warm):
        assert [line["SalesItemLineDetail"]["TaxCodeRef"]["value"] for line in item_lines(invoice)] == ["TAX", "NON"]


# -- creating missing products -----------------------------------------------------------------------------


def test_missing_products_are_created_with_everything_hubspot_knows(app, portal, fake_quickbooks, books, invoice_for):
    configure(app, company={"product_type": "NonInventory"})
    services = books.find("Account", Name="Services")["Id"]  # not the first Income account: the setting decides
    configure(app, company={"income_account": services})
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {
                "name": "Gadget",
                "hs_sku": "G-9",
                "quantity": "3",
                "price": "5",
                "amount": "15",
                "description": "Blue",
                "hs_product_id": "601",
            },
            {"name": "Consulting: day", "quantity": "2", "price": "800", "amount": "1600", "hs_product_id": "602"},
            {"name": "Widget", "hs_sku": "W-1", "quantity": "1", "price": "100", "amount": "100"},
        ],
    )

    invoice = invoice_of(books, invoice_for(deal.deal_id, create_missing_products="true"))

    gadget = books.find("Item", Name="Gadget")
    consulting = books.find("Item", Name="Consulting day")  # QuickBooks refuses colons in item names
    assert (gadget["Sku"], gadget["Type"], float(gadget["UnitPrice"]), gadget["Description"]) == (
        "G-9",
        "NonInventory",
        5.0,
        "Blue",
    )
    assert gadget["IncomeAccountRef"]["value"] == consulting["IncomeAccountRef"]["value"] == services
    assert item_ids(invoice) == [gadget["Id"], consulting["Id"], deal.widget_id]
    writes = fake_quickbooks.requests_to("POST", "/item")
    assert len(writes) == 2 and len({w.query["requestid"] for w in writes}) == 2
    assert float(invoice["TotalAmt"]) == 1715.0


def test_created_products_use_the_first_active_income_account_and_are_remembered(
    app, portal, fake_quickbooks, books, invoice_for
):
    first_income = books.find("Account", Name="Sales of Product Income")
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {"name": "Gadget", "quantity": "1", "price": "5", "amount": "5", "hs_product_id": "601"},
        ],
    )
    books.patch("Account", first_income["Id"], Active=False)  # inactive accounts don't count

    invoice_of(books, invoice_for(deal.deal_id, create_missing_products="true"))
    invoice_of(books, invoice_for(deal.deal_id, create_missing_products="true"))

    [gadget] = [i for i in books.all("Item") if i["Name"] == "Gadget"]  # created once
    assert gadget["IncomeAccountRef"]["value"] == books.find("Account", Name="Services")["Id"]
    assert gadget["Type"] == "Service"
    assert len(fake_quickbooks.requests_to("POST", "/item")) == 1


def test_a_name_held_by_an_inactive_product_is_explained(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(
        portal,
        fake_quickbooks,
        lines=[
            {"name": "Retired thing", "quantity": "1", "price": "5", "amount": "5"},
        ],
    )
    retired = books.add_item(Name="Retired Thing", Type="Service")
    books.patch("Item", retired["Id"], Active=False)

    fields = invoice_for(deal.deal_id, create_missing_products="true")

    assert fields["error_code"] == "PRODUCT_NOT_FOUND"
    assert "held by an inactive QuickBooks product" in fields["error_message"]
    assert books.all("Invoice") == []


# -- one chosen product, no line items ---------------------------------------------------------------------


def test_products_naming_an_item_bills_the_deal_amount_on_one_line(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    portal.update("deals", deal.deal_id, {"amount": "1234.56"})

    invoice = invoice_of(books, invoice_for(deal.deal_id, products=deal.service_id))

    [line] = item_lines(invoice)
    assert line["SalesItemLineDetail"]["ItemRef"]["value"] == deal.service_id
    assert (line["Amount"], line["SalesItemLineDetail"]["Qty"], line["SalesItemLineDetail"]["UnitPrice"]) == (
        1234.56,
        1.0,
        1234.56,
    )
    assert line["Description"] == "Acme rollout"
    assert float(invoice["TotalAmt"]) == 1234.56
    assert item_lookups(fake_quickbooks) == []  # the line items are not matched at all
    assert fake_quickbooks.requests_to("GET", f"/item/{deal.service_id}")


@pytest.mark.parametrize("chosen", ["unknown", "inactive", "not-an-item", "99999"])
def test_unknown_or_inactive_chosen_item_is_invalid_input(portal, fake_quickbooks, books, invoice_for, chosen):
    deal = seed_deal(portal, fake_quickbooks)
    item_id = {"unknown": "99999", "inactive": deal.widget_id, "not-an-item": "Widget", "99999": "99999"}[chosen]
    if chosen == "inactive":
        books.patch("Item", deal.widget_id, Active=False)
    if chosen == "unknown":  # the id of another kind of record
        item_id = books.find("Account", Name="Services")["Id"]

    fields = invoice_for(deal.deal_id, products=item_id)

    assert fields["error_code"] == "INVALID_INPUT"
    assert (
        f"The QuickBooks product {item_id} chosen in the 'Products' field does not exist or is inactive"
        in fields["error_message"]
    )
    assert books.all("Invoice") == []


def test_deal_without_line_items_is_no_line_items(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks, lines=[])

    fields = invoice_for(deal.deal_id)

    assert fields["error_code"] == "NO_LINE_ITEMS"
    assert fields["error_message"].startswith(f"The deal {deal.deal_id} has no line items.")
    assert books.all("Invoice") == [] and books.all("Customer") == []


def test_chosen_item_on_a_deal_without_amount_is_no_line_items(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)
    portal.update("deals", deal.deal_id, {"amount": ""})

    fields = invoice_for(deal.deal_id, products=deal.service_id)

    assert fields["error_code"] == "NO_LINE_ITEMS"
    assert f"deal {deal.deal_id} has no amount" in fields["error_message"]


# -- amounts -----------------------------------------------------------------------------------------------


def test_discounts_keep_the_total_and_every_line_exact(portal, fake_quickbooks, books, invoice_for):
    lines = [
        {
            "name": "Widget",
            "hs_sku": "W-1",
            "quantity": "2",
            "price": "100",
            "hs_discount_percentage": "10",
            "amount": "180",
        },  # 2 × 90
        {
            "name": "Widget",
            "hs_sku": "W-1",
            "quantity": "3",
            "price": "10",
            "discount": "3.33",
            "amount": "20.01",
        },  # 3 × 6.67
        {
            "name": "Widget",
            "hs_sku": "W-1",
            "quantity": "3",
            "price": "10",
            "hs_total_discount": "10",
            "amount": "20",
        },  # 20 / 3 is not exact: 3 × 6.6666667, which rounds to 20.00
        # HubSpot keeps more decimals than cents: 3 × 33.34 would be a cent over HubSpot's 100.005 → 100.01.
        *[{"name": "Setup service", "quantity": "1", "price": "33.335", "amount": "33.335"}] * 3,
    ]
    deal = seed_deal(portal, fake_quickbooks, lines=lines)
    portal.update("deals", deal.deal_id, {"amount": "320.02"})  # HubSpot's sum of the line amounts, in cents

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    assert Decimal(str(invoice["TotalAmt"])) == Decimal("320.02")
    built = item_lines(invoice)
    for line in built:
        detail = line["SalesItemLineDetail"]
        exact = Decimal(str(detail["Qty"])) * Decimal(str(detail["UnitPrice"]))
        assert abs(exact - Decimal(str(line["Amount"]))) < Decimal("0.005"), line  # to the cent, as QuickBooks checks
    assert [(line["SalesItemLineDetail"]["Qty"], line["SalesItemLineDetail"]["UnitPrice"]) for line in built] == [
        (2.0, 90.0),
        (3.0, 6.67),
        (3.0, 6.6666667),
        (1.0, 33.33),
        (1.0, 33.34),
        (1.0, 33.34),
    ]
    assert built[2]["Description"] == "Widget"


@pytest.mark.parametrize(
    "amounts, expected",
    [
        (["33.335"] * 3, ["33.33", "33.34", "33.34"]),  # 100.005 → 100.01
        (["0.005"] * 4, ["0.00", "0.00", "0.01", "0.01"]),  # 0.02
        (["10.004", "10.004", "10.004"], ["10.01", "10.00", "10.00"]),  # 30.012 → 30.01
        (["1.25", "2.50"], ["1.25", "2.50"]),  # nothing to spread
        (["-5.005", "10"], ["-5.00", "10.00"]),  # a negative line (a credit) counts too: 4.995 → 5.00
    ],
)
def test_cents_are_spread_so_the_lines_add_up_to_hubspots_total(amounts, expected):
    from actions.steps.lines import money, rounded_amounts
    from actions.steps.source import Record

    lines = [Record(id=str(n), properties={"amount": amount}) for n, amount in enumerate(amounts)]
    rounded = rounded_amounts(lines)
    assert rounded == [Decimal(x) for x in expected]
    assert sum(rounded) == money(sum(Decimal(a) for a in amounts))


def test_a_deal_amount_that_differs_from_its_line_items_is_noted(app, portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)  # line items: 200 + 250
    portal.update("deals", deal.deal_id, {"amount": "500"})

    invoice = invoice_of(books, invoice_for(deal.deal_id))

    assert float(invoice["TotalAmt"]) == 450.0
    assert any(
        f"deal {deal.deal_id} amount is 500, but its line items add up to 450.00" in note
        for note in stored_executions(app)[0].notes
    )


# -- the cost of an invoice --------------------------------------------------------------------------------


def test_quickbooks_calls_cold_and_warm(portal, fake_quickbooks, books, invoice_for):
    deal = seed_deal(portal, fake_quickbooks)  # new contact, two products that match in QuickBooks
    fake_quickbooks.reset_requests()

    invoice_of(books, invoice_for(deal.deal_id))
    cold = quickbooks_calls(fake_quickbooks)
    fake_quickbooks.reset_requests()
    invoice_of(books, invoice_for(deal.deal_id))
    warm = quickbooks_calls(fake_quickbooks)

    assert cold == [
        # Every read together: the preferences (then kept for the company), the line items (SKUs, names) and the
        # customer (email, names).
        "POST /batch",
        "POST /customer",
        "POST /invoice",
    ]
    assert warm == [
        "POST /invoice",  # with the remembered customer and items, as remembered: QuickBooks checks them anyway
    ]
    print(f"\nQuickBooks calls for one invoice: cold {len(cold)} {cold}; warm {len(warm)} {warm}")
