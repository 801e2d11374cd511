"""prepare_sales_document: what invoices, estimates and sales and refund receipts share, from record to body.

Read-only checks come first (currency, eligibility, products, tax codes, the action's own), so a failing
record leaves nothing behind in QuickBooks; then the writes: the customer, any missing products, and
finally the document.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from actions.context import ActionResult
from actions.errors import ActionError
from actions.steps.company import CompanyProfile, company_profile
from actions.steps.currency import document_currency
from actions.steps.customers import resolve_customer
from actions.steps.documents import create_document, tracking_note
from actions.steps.eligibility import check_contact_eligible, filter_properties
from actions.steps.lines import LineTax, build_sales_lines, money, rounded_amounts
from actions.steps.products import ItemMatch, create_missing_items, match_items
from actions.steps.source import AMOUNT_PROPERTIES, Record, Source, as_date, load_party, load_source
from actions.steps.taxes import (
    global_tax_calculation,
    hubspot_total_with_tax,
    note_total_difference,
    plan_taxes,
    quickbooks_total,
)

DOC_NUMBER_LENGTH = 21


@dataclass
class SalesDocument:
    body: dict
    customer: dict
    hubspot_total: Decimal | None = None  # with tax, when HubSpot computed the tax

    def create(self, ctx, entity: str, *, step: str, extra_outputs: dict | None = None) -> ActionResult:
        document = self.write(ctx, entity, step=step)
        return ActionResult(
            document=document, entity=entity, customer_id=str(self.customer["Id"]), extra_outputs=extra_outputs or {}
        )

    def write(self, ctx, entity: str, *, step: str) -> dict:
        document = create_document(ctx, entity, self.body, step=step)
        note_total_difference(ctx, document, self.hubspot_total, entity)
        return document


def load_sales_source(ctx) -> Source:
    """The enrolled record with its line items and whatever property its document number comes from."""
    return load_source(ctx, extra_properties=number_properties(ctx))


def prepare_sales_document(ctx, source: Source, *, check: Callable | None = None) -> SalesDocument:
    """The document's body, its customer found or created; `check(lines)` is the action's own last read-only check."""
    party = load_party(ctx, source, contact_properties=filter_properties(ctx.settings))
    if party.contact is not None:
        check_contact_eligible(ctx, party.contact)  # before QuickBooks is asked anything
    company = company_profile(ctx)
    currency = document_currency(ctx, company, source)
    party = replace(party, currency=currency, home_currency=company.home_currency)
    preferences = company.preferences
    lines = sales_lines(ctx, source, preferences)  # reads only: nothing is written for a record that fails here
    lines.taxes = plan_taxes(ctx, company, lines.line_items, lines.match.matched)
    lines.company = company
    number = document_number(ctx, source, preferences)
    if check:
        check(lines)
    customer = resolve_customer(ctx, party)
    note_amount_mismatch(ctx, source, lines)
    body = {
        "CustomerRef": {"value": str(customer["Id"])},
        "Line": lines.build(ctx),
        "PrivateNote": tracking_note(ctx, source.label),
    }
    if party.email:
        body["BillEmail"] = {"Address": party.email}
    if number:
        body["DocNumber"] = number
    if source.date:
        body["TxnDate"] = source.date
    if currency:
        body["CurrencyRef"] = {"value": currency}
    calculation = global_tax_calculation(ctx, company)
    if calculation:
        body["GlobalTaxCalculation"] = calculation
    return SalesDocument(
        body=body, customer=customer, hubspot_total=hubspot_total_with_tax(lines.line_items, lines.taxes)
    )


def note_amount_mismatch(ctx, source: Source, lines: "PendingLines") -> None:
    """The document follows the line items; say so when the record's own amount was edited to something else."""
    amount = source.record.get(AMOUNT_PROPERTIES[source.object_type])
    try:
        differs = bool(amount) and money(amount) != lines.hubspot_total
    except ArithmeticError:  # not a number: nothing to compare
        return
    if differs:
        ctx.journal.note(
            f"The {source.label} amount is {amount}, but its line items add up to {lines.hubspot_total}; "
            "the QuickBooks document follows the line items."
        )


@dataclass
class PendingLines:
    """Lines matched to QuickBooks Items, with their taxes; missing products are created when the lines are built."""

    line_items: list[Record]
    match: ItemMatch
    service_dates: dict[str, str]
    taxes: dict[str, LineTax] = field(default_factory=dict)
    company: CompanyProfile | None = None

    @property
    def hubspot_total(self) -> Decimal:
        """HubSpot's line amounts added up, in cents (before tax, unless prices include it)."""
        return sum(rounded_amounts(self.line_items), Decimal(0))

    @property
    def quickbooks_total(self) -> Decimal:
        """The document's total with tax as QuickBooks will work it out (outside automated US sales tax)."""
        return quickbooks_total(self.line_items, self.taxes)

    def build(self, ctx) -> list[dict]:
        items = create_missing_items(ctx, self.match)
        return build_sales_lines(self.line_items, items, service_dates=self.service_dates, taxes=self.taxes)


def sales_lines(ctx, source: Source, preferences: dict) -> PendingLines:
    chosen_item = ctx.input("products", "line_items")
    if chosen_item != "line_items":
        return single_item_line(ctx, source, chosen_item, preferences)
    if not source.line_items:
        raise ActionError("NO_LINE_ITEMS", object_label=source.label)
    return PendingLines(source.line_items, match_items(ctx, source.line_items), service_dates(ctx, source, preferences))


def single_item_line(ctx, source: Source, item_id: str, preferences: dict) -> PendingLines:
    """`products` names one QuickBooks Item: one line for the record's whole amount."""
    item = ctx.books.read("Item", item_id) if item_id.isdigit() else None
    if not item or not item.get("Active", True):
        raise ActionError(
            "INVALID_INPUT",
            reason=f"The QuickBooks product {item_id} chosen in the 'Products' field does not exist or is inactive.",
        )
    amount = source.record.get(AMOUNT_PROPERTIES[source.object_type])
    if not amount:
        raise ActionError("NO_LINE_ITEMS", object_label=f"{source.label} has no amount and")
    line = Record(
        id="amount",
        properties={
            "name": item.get("Name", ""),
            "quantity": "1",
            "price": amount,
            "amount": amount,
            "description": source.title,
        },
    )
    return PendingLines(
        [line], ItemMatch(matched={line.id: item}, line_items=[line]), service_dates(ctx, source, preferences, [line])
    )


# -- service dates -----------------------------------------------------------------------------------------


def service_dates(ctx, source: Source, preferences: dict, line_items: list[Record] | None = None) -> dict[str, str]:
    """Line id → ServiceDate when they apply: billing start date, else the record's date, else today."""
    mode = ctx.settings.get("service_dates", "auto")
    if mode == "never" or (mode == "auto" and not revenue_recognition_on(preferences)):
        return {}
    fallback = source.date or date.today().isoformat()
    return {
        line.id: as_date(line.get("hs_recurring_billing_start_date")) or fallback
        for line in (line_items if line_items is not None else source.line_items)
    }


def revenue_recognition_on(preferences: dict) -> bool:
    return bool((preferences.get("ProductAndServicesPrefs") or {}).get("RevenueRecognition"))


# -- document numbers --------------------------------------------------------------------------------------


def number_properties(ctx) -> list[str]:
    prop = ctx.settings.get("document_number_property")
    return [prop] if ctx.settings.get("document_numbers") == "hubspot" and prop else []


def document_number(ctx, source: Source, preferences: dict) -> str:
    if ctx.settings.get("document_numbers") == "hubspot":
        prop = "hs_quote_number" if source.object_type == "QUOTE" else ctx.settings.get("document_number_property")
        number = source.record.get(prop) if prop else ""
        if len(number) > DOC_NUMBER_LENGTH:
            # Never cut: two numbers that share their first 21 characters would collide, or worse, not.
            raise ActionError(
                "INVALID_INPUT",
                reason=f"The {source.label}'s number '{number}' ({prop}) is "
                f"{len(number)} characters long; QuickBooks document numbers hold at most "
                f"{DOC_NUMBER_LENGTH}. Shorten it in HubSpot, or let QuickBooks number documents "
                "(document_numbers='quickbooks').",
            )
        if number:
            return number
        ctx.journal.note(
            f"document_numbers is 'hubspot' but the {source.label} has no "
            f"{prop or 'document_number_property setting'}; QuickBooks numbers the document."
        )
    if (preferences.get("SalesFormsPrefs") or {}).get("CustomTxnNumbers"):
        # With custom transaction numbers on, QuickBooks leaves an omitted number blank; ask it to number.
        return "AUTO_GENERATE"
    return ""
