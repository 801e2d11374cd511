"""build_sales_lines: QuickBooks sales lines from HubSpot line items. Pure: no I/O.

QuickBooks insists on Amount = Qty × UnitPrice per line, to the cent (fault 6070), and keeps up to 7 decimals
on UnitPrice; HubSpot's line amount is after discounts and may carry more decimals than cents. So:
- the line amounts are rounded to cents together, so that they add up to HubSpot's total rounded once
  (largest remainder: the lines that rounding moved most give or take the odd cent);
- every line keeps HubSpot's quantity, which accountants and inventory reports rely on:
  - with HubSpot's price when quantity × price rounds to the amount (2 × 100 = 200; 3 × 12.345678 = 37.04)
    and it fits in 7 decimals;
  - otherwise with the unit price of at most 7 decimals whose product with the quantity rounds to the amount
    (3 × 10 discounted to 20 → 3 × 6.6666667, which QuickBooks rounds to 20.00);
- only when no 7-decimal unit price can do that (over 100,000 units, roughly) does the line become one unit
  at the line's amount, with the quantity, price and discount spelled out in its description.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from actions.steps.source import Record

CENT = Decimal("0.01")
HALF_CENT = Decimal("0.005")
UNIT_PRICE_STEP = Decimal("0.0000001")  # QuickBooks keeps up to 7 decimals on unit prices
# The unit prices that round back to the amount form an interval of width 0.01 / quantity around
# amount / quantity, and the nearest 7-decimal price is the one closest to its middle: if it misses, a
# neighbour can only hit at the interval's edge (a rounding tie, or division's last-digit rounding), and
# prices further out cannot. So a few steps each way are plenty; a miss means no 7-decimal price exists.
NEIGHBOUR_STEPS = 3


def money(value) -> Decimal:
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def decimal_of(text: str, default: str = "0") -> Decimal:
    try:
        return Decimal(text) if text not in ("", None) else Decimal(default)
    except InvalidOperation:
        return Decimal(default)


def without_trailing_zeros(value: Decimal) -> Decimal:
    """100.00 → 100, 6.6666670 → 6.666667 (normalize alone would give 1E+2)."""
    normal = value.normalize()
    return normal if normal.as_tuple().exponent <= 0 else normal.quantize(Decimal(1))


def raw_amount(line: Record) -> Decimal:
    """HubSpot's amount for the line, unrounded; computed from quantity, price and discount when absent.

    HubSpot's discounts: hs_total_discount for the whole line, discount per unit, hs_discount_percentage in percent.
    """
    if line.get("amount"):
        return decimal_of(line.get("amount"))
    quantity = decimal_of(line.get("quantity"), "1")
    gross = quantity * decimal_of(line.get("price"))
    if line.get("hs_total_discount"):
        return gross - decimal_of(line.get("hs_total_discount"))
    unit_discount = decimal_of(line.get("discount"))
    if unit_discount:  # a "0" unit discount must not hide a percentage
        return gross - quantity * unit_discount
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
        for i in order[: abs(gap)]:
            rounded[i] += step
    return rounded


def has_unit_price_places(price: Decimal) -> bool:
    return price == price.quantize(UNIT_PRICE_STEP, rounding=ROUND_HALF_UP)


def neighbour_offsets(steps: int) -> Iterator[int]:
    """0, -1, 1, -2, 2, ...: nearest first, so the price stays as close to amount / quantity as it can."""
    yield 0
    for step in range(1, steps + 1):
        yield -step
        yield step


def unit_price_for(quantity: Decimal, amount: Decimal) -> Decimal | None:
    """A unit price of at most 7 decimals with quantity × price rounding to `amount` (no tie), or None."""
    if not quantity:
        return None
    nearest = (amount / quantity).quantize(UNIT_PRICE_STEP, rounding=ROUND_HALF_UP)
    for offset in neighbour_offsets(NEIGHBOUR_STEPS):
        price = nearest + offset * UNIT_PRICE_STEP
        if rounds_to(quantity * price, amount):
            return price
    return None


def rounds_to(product: Decimal, amount: Decimal) -> bool:
    """Within half a cent of the amount, never exactly half: QuickBooks may round a tie either way (floats)."""
    return abs(product - amount) < HALF_CENT


def line_amounts(line: Record, amount: Decimal | None = None) -> tuple[Decimal, Decimal, Decimal]:
    """(quantity, unit price, amount) with money(Qty × UnitPrice) = Amount; `amount` in cents if given.

    The quantity is HubSpot's, except in the fallback (no 7-decimal unit price fits): then 1 × amount.
    """
    quantity = decimal_of(line.get("quantity"), "1")
    price = decimal_of(line.get("price"))
    amount = money(raw_amount(line)) if amount is None else amount
    if rounds_to(quantity * price, amount) and has_unit_price_places(price):
        # HubSpot's own price, as on the quote, whenever QuickBooks' check (to the cent) accepts it.
        return quantity, without_trailing_zeros(price), amount
    unit_price = unit_price_for(quantity, amount)
    if unit_price is not None:
        return quantity, without_trailing_zeros(unit_price), amount
    return Decimal(1), amount, amount


@dataclass(frozen=True)
class LineTax:
    """A line's QuickBooks tax code; with prices that include tax, its rate turns HubSpot's amount into the net."""

    code: str  # TaxCodeRef: TAX or NON in the US, a TaxCode id elsewhere
    rate: Decimal = Decimal(0)  # percent, the sum of the code's sales tax rates
    inclusive: bool = False

    def net(self, amount: Decimal) -> Decimal:
        """QuickBooks' line Amount is always net of tax; HubSpot's is gross when its prices include tax."""
        return money(amount / (1 + self.rate / 100)) if self.inclusive else amount


def build_sales_line(
    line: Record,
    item: dict,
    *,
    service_date: str = "",
    amount: Decimal | None = None,
    tax: LineTax | None = None,
) -> dict:
    gross = money(raw_amount(line)) if amount is None else amount
    quantity, unit_price, amount = line_amounts(line, tax.net(gross) if tax else gross)
    detail = {
        "ItemRef": {"value": str(item["Id"]), "name": item.get("Name", "")},
        "Qty": float(quantity),
        "UnitPrice": float(unit_price),
    }
    if service_date:
        detail["ServiceDate"] = service_date
    if tax:
        detail["TaxCodeRef"] = {"value": tax.code}
        if tax.inclusive:
            detail["TaxInclusiveAmt"] = float(gross)
    body = {"DetailType": "SalesItemLineDetail", "Amount": float(amount), "SalesItemLineDetail": detail}
    description = line_description(line, quantity)
    if description:
        body["Description"] = description
    return body


def line_description(line: Record, quantity: Decimal) -> str:
    """HubSpot's description; in the 1 × amount fallback, also the quantity, price and discount it hides."""
    text = line.get("description") or line.get("name")
    if quantity != decimal_of(line.get("quantity"), "1"):
        text = f"{text} ({fallback_note(line)})".strip()
    return text[:4000]


def fallback_note(line: Record) -> str:
    """What the 1 × amount fallback line stands for, e.g. "300000 × 10, discounted to 2000000.02"."""
    quantity, price, amount = decimal_of(line.get("quantity"), "1"), line.get("price"), money(raw_amount(line))
    if amount == money(quantity * decimal_of(price)):
        return f"{quantity} × {price}"
    return f"{quantity} × {price}, discounted to {amount}"


def build_sales_lines(
    line_items: list[Record],
    items: dict[str, dict],
    *,
    service_dates: dict[str, str] | None = None,
    taxes: dict[str, LineTax] | None = None,
) -> list[dict]:
    service_dates, taxes = service_dates or {}, taxes or {}
    return [
        build_sales_line(
            line,
            items[line.id],
            service_date=service_dates.get(line.id, ""),
            amount=amount,
            tax=taxes.get(line.id),
        )
        for line, amount in zip(line_items, rounded_amounts(line_items), strict=True)
    ]


def total(lines: list[dict]) -> Decimal:
    return sum((money(line["Amount"]) for line in lines), Decimal(0))
