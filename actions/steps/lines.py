"""build_sales_lines: QuickBooks sales lines from HubSpot line items. Pure: no I/O.

QuickBooks insists on Amount = Qty × UnitPrice per line; HubSpot's amount is after discounts. So a
discounted line carries the discounted unit price when that is exact to the cent, and otherwise becomes
one unit at the line's amount with the quantity and discount spelled out in its description.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from actions.steps.source import Record

CENT = Decimal("0.01")
UNIT_PRICE_PLACES = Decimal("0.0000001")  # QuickBooks keeps up to 7 decimals on unit prices


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def decimal_of(text: str, default: str = "0") -> Decimal:
    try:
        return Decimal(text) if text not in ("", None) else Decimal(default)
    except InvalidOperation:
        return Decimal(default)


def line_amounts(line: Record) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity, unit price, amount) with Amount = Qty × UnitPrice exactly, summing to HubSpot's amount."""
    quantity = decimal_of(line.get("quantity"), "1")
    price = decimal_of(line.get("price"))
    amount = money(decimal_of(line.get("amount"), str(quantity * price)))
    if money(quantity * price) == amount:
        return quantity, price, amount
    if quantity:
        unit = (amount / quantity).quantize(UNIT_PRICE_PLACES, rounding=ROUND_HALF_UP)
        if unit * quantity == amount:  # exact, not just after rounding: no 6.6666667 unit prices
            return quantity, unit.normalize(), amount
    return Decimal(1), amount, amount


def build_sales_line(line: Record, item: dict, *, service_date: str = "") -> dict:
    quantity, unit_price, amount = line_amounts(line)
    detail = {"ItemRef": {"value": str(item["Id"]), "name": item.get("Name", "")},
              "Qty": float(quantity), "UnitPrice": float(unit_price)}
    if service_date:
        detail["ServiceDate"] = service_date
    body = {"DetailType": "SalesItemLineDetail", "Amount": float(amount), "SalesItemLineDetail": detail}
    description = line_description(line, quantity)
    if description:
        body["Description"] = description
    return body


def line_description(line: Record, quantity: Decimal) -> str:
    text = line.get("description") or line.get("name")
    original_quantity = decimal_of(line.get("quantity"), "1")
    if quantity != original_quantity:
        text = f"{text} ({original_quantity} × {line.get('price')}, discounted to {line.get('amount')})"
    return text[:4000]


def build_sales_lines(line_items: list[Record], items: dict[str, dict], *, service_dates: dict[str, str] | None = None) -> list[dict]:
    service_dates = service_dates or {}
    return [build_sales_line(line, items[line.id], service_date=service_dates.get(line.id, "")) for line in line_items]


def total(lines: list[dict]) -> Decimal:
    return sum((money(line["Amount"]) for line in lines), Decimal(0))
