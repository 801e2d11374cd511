"""Sales lines: HubSpot's quantity on every line, money(Qty × UnitPrice) = Amount with a unit price of at most
7 decimals, and the total equals HubSpot's amount to the cent."""

import itertools
from decimal import Decimal

import pytest

from actions.steps.lines import (
    UNIT_PRICE_STEP,
    build_sales_lines,
    line_amounts,
    money,
    raw_amount,
    rounded_amounts,
    total,
    unit_price_for,
)
from actions.steps.source import Record
from tests.fakes.quickbooks import FakeQuickBooks, QboFault

ITEMS = {"1": {"Id": "7", "Name": "Widget"}}


def line(quantity, price, amount, **extra):
    properties = {"name": "Widget", "quantity": quantity, "price": price, "amount": amount, **extra}
    return Record(id="1", properties=properties)


def decimals(value: float) -> int:
    """Decimal places of a float as sent on the wire (repr), e.g. 6.6666667 → 7, 1e-07 → 7."""
    return max(0, -Decimal(repr(value)).as_tuple().exponent)


def wire(value: float) -> Decimal:
    return Decimal(repr(value))  # what QuickBooks (and the fake) reads from the JSON number


def assert_quickbooks_accepts(built: dict) -> None:
    detail = built["SalesItemLineDetail"]
    assert decimals(detail["UnitPrice"]) <= 7, built
    assert money(wire(detail["Qty"]) * wire(detail["UnitPrice"])) == wire(built["Amount"]), built


# -- one line -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quantity, price, amount, expected",
    [
        ("2", "100", "200", ("2", "100", "200.00")),  # no discount: HubSpot's price
        ("2", "100.00", "200", ("2", "100", "200.00")),  # trailing zeros go
        ("2", "100", "180", ("2", "90", "180.00")),  # 10% off: exact discounted unit price
        ("3", "10", "20", ("3", "6.6666667", "20.00")),  # 20 / 3 to 7 decimals: 3 × 6.6666667 = 20.0000001 → 20.00
        ("3", "10", "20.01", ("3", "6.67", "20.01")),  # exact at 2 decimals
        ("1.5", "100", "150", ("1.5", "100", "150.00")),  # fractional quantity
        ("1", "19.99", "", ("1", "19.99", "19.99")),  # amount missing: qty × price
        ("", "5", "5", ("1", "5", "5.00")),  # quantity missing: one
        # HubSpot's price is kept whenever quantity × price rounds to the line's amount, as QuickBooks checks.
        ("3", "12.345678", "37.037034", ("3", "12.345678", "37.04")),  # 6-decimal price
        ("11", "0.123456", "1.358016", ("11", "0.123456", "1.36")),
        ("250", "0.0333333", "8.333325", ("250", "0.0333333", "8.33")),  # large quantity, 7-decimal price
        ("0.333", "29.99", "9.98667", ("0.333", "29.99", "9.99")),
        ("2.75", "3.33", "9.1575", ("2.75", "3.33", "9.16")),
        # 3 × 33.335 is exactly half a cent off 100.01: a tie QuickBooks could round either way, so not sent.
        ("3", "33.335", "100.005", ("3", "33.3366667", "100.01")),
        # A price with more than 7 decimals cannot be sent: a 7-decimal one that rounds to the amount is.
        ("3", "0.123456789", "0.370370367", ("3", "0.1233333", "0.37")),
        ("1.5", "0.99", "1.3365", ("1.5", "0.8933333", "1.34")),  # 1.5 × 0.99 less 10%
        ("3", "10", "-20", ("3", "-6.6666667", "-20.00")),  # a credit
    ],
)
def test_line_amounts(quantity, price, amount, expected):
    q, p, a = line_amounts(line(quantity, price, amount))
    assert (q, p, a) == tuple(Decimal(x) for x in expected)
    assert money(q * p) == a
    assert -p.as_tuple().exponent <= 7


@pytest.mark.parametrize(
    "extra, amount, expected",
    [
        ({"hs_discount_percentage": "15"}, "", ("3", "84.99", "254.97")),  # 3 × 99.99 less 15% = 254.9745
        ({"hs_discount_percentage": "15"}, "254.9745", ("3", "84.99", "254.97")),
    ],
)
def test_percentage_discount_on_99_99(extra, amount, expected):
    assert line_amounts(line("3", "99.99", amount, **extra)) == tuple(Decimal(x) for x in expected)


def test_percentage_discount_that_does_not_divide():
    # 7 × 12.5 less 33% = 58.625 → 58.63; 58.63 / 7 = 8.37571428… → 8.3757143, and 7 × that = 58.6300001.
    assert line_amounts(line("7", "12.5", "", hs_discount_percentage="33")) == (
        Decimal(7),
        Decimal("8.3757143"),
        Decimal("58.63"),
    )


@pytest.mark.parametrize(
    "properties, expected_raw",
    [
        ({"quantity": "4", "price": "19.99", "discount": "2.5"}, "69.96"),  # 79.96 less 4 × 2.50
        ({"quantity": "3", "price": "10", "discount": "3.33"}, "20.01"),
        ({"quantity": "3", "price": "10", "discount": "3.33", "hs_total_discount": "10"}, "20"),  # total wins
        (
            {"quantity": "3", "price": "10", "discount": "0", "hs_discount_percentage": "10"},
            "27.0",
        ),  # "0" hides nothing
        ({"quantity": "3", "price": "10", "hs_discount_percentage": "10"}, "27.0"),
        ({"quantity": "3", "price": "10", "discount": "1", "amount": "25"}, "25"),  # HubSpot's amount wins
    ],
)
def test_raw_amount_honours_each_kind_of_discount(properties, expected_raw):
    assert raw_amount(Record(id="1", properties=properties)) == Decimal(expected_raw)


@pytest.mark.parametrize("amount", ["", "20.01"])
def test_unit_discount_keeps_the_quantity(amount):
    assert line_amounts(line("3", "10", amount, discount="3.33")) == (Decimal(3), Decimal("6.67"), Decimal("20.01"))


def test_unit_discount_that_does_not_divide():
    # 6 × (4.99 − 0.333) = 27.942 → 27.94; 27.94 / 6 = 4.656666… → 4.6566667
    assert line_amounts(line("6", "4.99", "", discount="0.333")) == (Decimal(6), Decimal("4.6566667"), Decimal("27.94"))


def test_an_inexact_discount_keeps_the_quantity_and_a_plain_description():
    [built] = build_sales_lines([line("3", "10", "20")], ITEMS)
    assert built["SalesItemLineDetail"] == {
        "ItemRef": {"value": "7", "name": "Widget"},
        "Qty": 3.0,
        "UnitPrice": 6.6666667,
    }
    assert built["Amount"] == 20.0
    assert built["Description"] == "Widget"


def test_unit_prices_are_sent_with_at_most_7_decimals():
    [built] = build_sales_lines([line("7", "1", "1")], ITEMS)  # 1 / 7 = 0.142857142857…
    assert repr(built["SalesItemLineDetail"]["UnitPrice"]) == "0.1428571"


# -- the fallback: no 7-decimal unit price reproduces the amount ---------------------------------------------


def some_7_decimal_price_fits(quantity: Decimal, amount: Decimal, reach: int = 1000) -> bool:
    """Brute force, far wider than the search in lines.py: does any 7-decimal price round back to amount?"""
    middle = (amount / quantity).quantize(UNIT_PRICE_STEP)
    return any(
        abs(quantity * (middle + step * UNIT_PRICE_STEP) - amount) < Decimal("0.005")
        for step in range(-reach, reach + 1)
    )


def test_a_huge_discounted_quantity_falls_back_to_one_unit_at_the_amount():
    # 300,000 units: the prices that round to 2,000,000.02 lie in [6.66666671667, 6.66666675), between 6.6666667
    # (→ 2,000,000.01) and 6.6666668 (→ 2,000,000.04).
    huge = line("300000", "10", "2000000.02")
    assert not some_7_decimal_price_fits(Decimal(300000), Decimal("2000000.02"))
    assert line_amounts(huge) == (Decimal(1), Decimal("2000000.02"), Decimal("2000000.02"))
    [built] = build_sales_lines([huge], ITEMS)
    assert (built["SalesItemLineDetail"]["Qty"], built["SalesItemLineDetail"]["UnitPrice"]) == (1.0, 2000000.02)
    assert built["Description"] == "Widget (300000 × 10, discounted to 2000000.02)"
    assert_quickbooks_accepts(built)


def test_the_fallback_description_does_not_claim_a_discount_that_is_not_there():
    # 200,000 × 0.00003335 = 6.67 exactly, but no 7-decimal price makes 200,000 × price round to 6.67.
    [built] = build_sales_lines([line("200000", "0.00003335", "6.67")], ITEMS)
    assert built["SalesItemLineDetail"]["Qty"] == 1.0
    assert built["Description"] == "Widget (200000 × 0.00003335)"


@pytest.mark.parametrize("quantity", ["99999", "100000", "100001", "123457", "250000", "1000003", "99999.5"])
def test_the_search_finds_a_unit_price_whenever_one_exists(quantity):
    quantity = Decimal(quantity)
    for cents in range(1_000_000, 1_000_400):
        amount = Decimal(cents) / 100
        found = unit_price_for(quantity, amount)
        assert (found is not None) == some_7_decimal_price_fits(quantity, amount, reach=5), amount
        if found is not None:
            assert money(quantity * found) == amount and found == found.quantize(UNIT_PRICE_STEP)


# -- many lines ---------------------------------------------------------------------------------------------


def test_total_matches_hubspot_to_the_cent():
    lines = [line("3", "0.1", "0.3"), line("7", "3.33", "23.31"), line("3", "10", "20")]
    built = [build_sales_lines([item], ITEMS)[0] for item in lines]
    assert total(built) == Decimal("43.61")
    for b in built:
        assert_quickbooks_accepts(b)


QUANTITIES = ["1", "2", "3", "7", "0.333", "1.5", "2.75", "12", "99", "250", "1000", "9999", "10000"]
PRICES = ["0.01", "0.0333333", "0.123456", "0.99", "12.345678", "99.99", "1234.5"]
DISCOUNTS = [
    {},
    {"hs_discount_percentage": "15"},
    {"hs_discount_percentage": "33.333"},
    {"discount": "0.0071"},
    {"hs_total_discount": "0.05"},
]


def grid_line(n: int, quantity: str, price: str, discount: dict, with_amount: bool) -> Record:
    properties = {"name": f"Line {n}", "quantity": quantity, "price": price, **discount}
    record = Record(id=str(n), properties=properties)
    if with_amount:  # HubSpot's own amount, unrounded, as it stores it
        properties["amount"] = str(raw_amount(record))
    return record


def test_every_generated_line_keeps_its_quantity_and_the_total():
    combinations = list(itertools.product(QUANTITIES, PRICES, DISCOUNTS, [True, False]))
    records = [grid_line(n, *combination) for n, combination in enumerate(combinations)]
    deals = [records[start : start + 4] for start in range(0, len(records), 4)]
    for deal in deals:
        built = build_sales_lines(deal, {record.id: {"Id": "7"} for record in deal})
        for record, sent in zip(deal, built, strict=True):
            detail = sent["SalesItemLineDetail"]
            assert detail["Qty"] == float(record.get("quantity")), (record, sent)
            assert round(detail["Qty"] * detail["UnitPrice"], 2) == sent["Amount"], (record, sent)
            assert_quickbooks_accepts(sent)
            assert sent["Description"] == record.get("name")
        assert total(built) == money(sum(raw_amount(record) for record in deal)), deal


def test_spread_cents_still_give_a_price_for_each_line():
    # 3 × 33.335 = 100.005 → 100.01: the cents spread 33.33 / 33.34 / 33.34, every line keeps quantity 3.
    deal = [Record(id=str(n), properties={"quantity": "3", "price": "11.111666", "amount": "33.335"}) for n in range(3)]
    assert rounded_amounts(deal) == [Decimal("33.33"), Decimal("33.34"), Decimal("33.34")]
    built = build_sales_lines(deal, {str(n): {"Id": "7"} for n in range(3)})
    assert [(b["SalesItemLineDetail"]["Qty"], b["SalesItemLineDetail"]["UnitPrice"]) for b in built] == [
        (3.0, 11.111666),
        (3.0, 11.1133333),
        (3.0, 11.1133333),
    ]  # 3 × 11.111666 = 33.334998 rounds to 33.33
    assert total(built) == Decimal("100.01")


def test_service_date_is_set_when_given():
    [built] = build_sales_lines([line("1", "5", "5")], ITEMS, service_dates={"1": "2026-11-30"})
    assert built["SalesItemLineDetail"]["ServiceDate"] == "2026-11-30"


# -- through the fake QuickBooks' rules ---------------------------------------------------------------------


@pytest.fixture
def company():
    fake = FakeQuickBooks().start()
    try:
        yield fake.add_company("1", name="T", country="US")
    finally:
        fake.stop()


AWKWARD_LINES = [
    ("3", "10", "20", {}),
    ("3", "99.99", "", {"hs_discount_percentage": "15"}),
    ("7", "12.5", "", {"hs_discount_percentage": "33"}),
    ("6", "4.99", "", {"discount": "0.333"}),
    ("0.333", "29.99", "", {}),
    ("2.75", "3.33", "", {}),
    ("1.5", "0.99", "", {"hs_discount_percentage": "10"}),
    ("3", "12.345678", "", {}),
    ("11", "0.123456", "", {}),
    ("250", "0.0333333", "", {"hs_discount_percentage": "7"}),
    ("9999", "0.0123457", "", {"hs_discount_percentage": "12.5"}),
    ("300000", "10", "2000000.02", {}),  # the fallback
    *[("3", "11.111666", "33.335", {})] * 3,  # cents spread
]


def test_quickbooks_accepts_awkward_lines_and_totals_them_like_hubspot(company):
    item = company.add_item(Name="Widget", Type="Service", UnitPrice=1)
    customer = company.add_customer(DisplayName="Ann")
    records = [
        Record(id=str(n), properties={"name": "Widget", "quantity": q, "price": p, "amount": a, **extra})
        for n, (q, p, a, extra) in enumerate(AWKWARD_LINES)
    ]
    built = build_sales_lines(records, {record.id: item for record in records})

    invoice = company.write("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": built})

    expected = money(sum(raw_amount(record) for record in records))
    assert Decimal(str(invoice["TotalAmt"])) == expected
    stored = [line for line in invoice["Line"] if line["DetailType"] == "SalesItemLineDetail"]
    assert [line["SalesItemLineDetail"]["UnitPrice"] for line in stored] == [
        line["SalesItemLineDetail"]["UnitPrice"] for line in built
    ]  # already 7 decimals: nothing to round


def test_the_fake_rounds_unit_prices_to_7_decimals_before_checking_the_amount(company):
    item = company.add_item(Name="Widget", Type="Service", UnitPrice=1)
    customer = company.add_customer(DisplayName="Ann")

    def invoice_line(qty, unit_price, amount):
        return {
            "DetailType": "SalesItemLineDetail",
            "Amount": amount,
            "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty, "UnitPrice": unit_price},
        }

    invoice = company.write(
        "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [invoice_line(3, 6.666666666, 20.0)]}
    )
    assert invoice["Line"][0]["SalesItemLineDetail"]["UnitPrice"] == 6.6666667
    # Unrounded, 300,000 × 6.66666673333 = 2,000,000.019999 would pass; rounded to 6.6666667 it is 2,000,000.01.
    with pytest.raises(QboFault) as fault:
        company.write(
            "Invoice",
            {"CustomerRef": {"value": customer["Id"]}, "Line": [invoice_line(300000, 6.66666673333, 2000000.02)]},
        )
    assert fault.value.code == "6070"
