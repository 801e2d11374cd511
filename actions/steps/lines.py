"""build_sales_lines: QuickBooks sales lines from HubSpot line items. Pure: no I/O.

QuickBooks insists on Amount = Qty × UnitPrice per line, in cents; HubSpot's line amount is after
discounts and may carry more decimals than cents. So:
- the line amounts are rounded to cents together, so that they add up to HubSpot's total rounded once
  (largest remainder: the lines that rounding moved most give or take the odd cent);
- a discounted line carries the discounted unit price when that is exact (2 × 100 less 10% → 2 × 90);
- otherwise it becomes one unit at the line's amount, with the quantity, price and discount spelled out
  in its description.
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


def raw_amount(line: Record) -> Decimal:
    """HubSpot's amount for the line, unrounded; computed from quantity, price and discount when absent."""
    if line.get("amount"):
        return decimal_of(line.get("amount"))
    gross = decimal_of(line.get("quantity"), "1") * decimal_of(line.get("price"))
    if line.get("hs_total_discount"):
        return gross - decimal_of(line.get("hs_total_discount"))
    return gross * (1 - decimal_of(line.get("hs_discount_percentage")) / 100)


def rounded_amounts(line_items: list[Record]) -> list[Decimal]:
    """Each line's amount in cents, adding up to the sum of HubSpot's amounts rounded once."""
    raw = [raw_amount(line) for line in line_items]
    rounded = [money(amount) for amount in raw]
    gap = int((money(sum(raw, Decimal(0))) - sum(rounded, Decimal(0))) / CENT)
    if gap:
        step = CENT if gap > 0 else -CENT
        # The lines rounding moved furthest in the other direction take the correction first.
        order = sorted(range(len(raw)), key=lambda i: (raw[i] - rounded[i]) * (1 if gap > 0 else -1), reverse=True)
        for i in order[:abs(gap)]:
            rounded[i] += step
    return rounded


def line_amounts(line: Record, amount: Decimal | None = None) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity, unit price, amount) with Amount = Qty × UnitPrice exactly; `amount` in cents if given."""
    quantity = decimal_of(line.get("quantity"), "1")
    price = decimal_of(line.get("price"))
    amount = money(raw_amount(line)) if amount is None else amount
    if quantity * price == amount:
        return quantity, price, amount
    if quantity:
        unit = (amount / quantity).quantize(UNIT_PRICE_PLACES, rounding=ROUND_HALF_UP)
        if unit * quantity == amount:  # exact, not just after rounding: no 6.6666667 unit prices
            return quantity, unit.normalize(), amount
    return Decimal(1), amount, amount


def build_sales_line(line: Record, item: dict, *, service_date: str = "", amount: Decimal | None = None) -> dict:
    quantity, unit_price, amount = line_amounts(line, amount)
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
        text = f"{text} ({original_quantity} × {line.get('price')}, discounted to {money(raw_amount(line))})"
    return text[:4000]


def build_sales_lines(line_items: list[Record], items: dict[str, dict], *,
                      service_dates: dict[str, str] | None = None) -> list[dict]:
    service_dates = service_dates or {}
    return [build_sales_line(line, items[line.id], service_date=service_dates.get(line.id, ""), amount=amount)
            for line, amount in zip(line_items, rounded_amounts(line_items))]


def total(lines: list[dict]) -> Decimal:
    return sum((money(line["Amount"]) for line in lines), Decimal(0))
