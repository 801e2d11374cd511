"""Sales lines: Amount = Qty × UnitPrice on every line, and the total equals HubSpot's amount to the cent."""

from decimal import Decimal

import pytest

from actions.steps.lines import build_sales_lines, line_amounts, total
from actions.steps.source import Record


def line(quantity, price, amount, **extra):
    return Record(id="1", properties={"name": "Widget", "quantity": quantity, "price": price, "amount": amount, **extra})


@pytest.mark.parametrize("quantity, price, amount, expected", [
    ("2", "100", "200", ("2", "100", "200.00")),  # no discount
    ("2", "100", "180", ("2", "90", "180.00")),  # 10% off: exact discounted unit price
    ("3", "10", "20", ("1", "20.00", "20.00")),  # 20 / 3 is not exact: one unit at the amount
    ("1.5", "100", "150", ("1.5", "100", "150.00")),  # fractional quantity
    ("1", "19.99", "", ("1", "19.99", "19.99")),  # amount missing: qty × price
    ("", "5", "5", ("1", "5", "5.00")),  # quantity missing: one
])
def test_line_amounts(quantity, price, amount, expected):
    q, p, a = line_amounts(line(quantity, price, amount))
    assert (q, p, a) == tuple(Decimal(x) for x in expected)
    assert (q * p).quantize(Decimal("0.01")) == a


def test_inexact_discount_keeps_the_original_quantity_in_the_description():
    [built] = build_sales_lines([line("3", "10", "20")], {"1": {"Id": "7", "Name": "Widget"}})
    assert built["SalesItemLineDetail"] == {"ItemRef": {"value": "7", "name": "Widget"}, "Qty": 1.0, "UnitPrice": 20.0}
    assert "3 × 10" in built["Description"]


def test_total_matches_hubspot_to_the_cent():
    items = {"1": {"Id": "7"}}
    lines = [line("3", "0.1", "0.3"), line("7", "3.33", "23.31"), line("3", "10", "20")]
    built = [build_sales_lines([l], items)[0] for l in lines]
    assert total(built) == Decimal("43.61")
    for b in built:
        detail = b["SalesItemLineDetail"]
        assert round(detail["Qty"] * detail["UnitPrice"], 2) == b["Amount"]


def test_service_date_is_set_when_given():
    [built] = build_sales_lines([line("1", "5", "5")], {"1": {"Id": "7"}}, service_dates={"1": "2026-11-30"})
    assert built["SalesItemLineDetail"]["ServiceDate"] == "2026-11-30"
