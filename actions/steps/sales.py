"""prepare_sales_document: what invoices, estimates and sales and refund receipts share, from record to body.

Read-only checks come first (currency, eligibility, products, tax codes, the action's own), so a failing
record leaves nothing behind in QuickBooks; then the writes: the customer, any missing products, and
finally the document.

The reads a document needs (the company's preferences, who the customer is, which Items the lines are) travel in
one QuickBooks request, and none at all when the customer and the products are remembered and the client keeps the
preferences: the document is written with them as remembered, and resolved again only if QuickBooks refuses one
as gone or inactive (actions/steps/memory.py).
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal

from actions.context import ActionResult
from actions.errors import ActionError, Refused
from actions.steps.company import CompanyProfile
from actions.steps.currency import CurrencyQuestions, answered_currency, ask_currency
from actions.steps.customers import ask_customer, foresee_customer, resolve_customer
from actions.steps.documents import create_document, tracking_note
from actions.steps.eligibility import check_contact_eligible, filter_properties
from actions.steps.lines import LineTax, build_sales_lines, money, rounded_amounts
from actions.steps.memory import TRUSTED, Memory, after_refusal
from actions.steps.payments import MoneyMovement, ask_money_movement, moved
from actions.steps.products import ItemMatch, ItemQuestions, ask_items, create_missing_items, match_items
from actions.steps.query import Questions
from actions.steps.source import AMOUNT_PROPERTIES, Party, Record, Source, as_date, load_party, load_source
from actions.steps.taxes import (
    ask_tax_tables,
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
    movement: MoneyMovement | None = None  # account, payment method and reference, when the money moved
    # What resolving the references again needs, should QuickBooks refuse a remembered one.
    source: Source | None = None
    party: Party | None = None
    company: CompanyProfile | None = None
    check: Callable | None = None
    money_account: str = ""  # the input naming the account the money moved through; "" when none did
    money_on_document: bool = True  # the movement's fields go on this document (not on a payment of it)
    lines: "PendingLines | None" = None
    number: str | None = None  # worked out once: "" when QuickBooks numbers the document
    customer_from_memory: bool = False

    def create(self, ctx, entity: str, *, step: str, extra_outputs: dict | None = None) -> ActionResult:
        document = self.write(ctx, entity, step=step)
        return ActionResult(
            document=document, entity=entity, customer_id=str(self.customer["Id"]), extra_outputs=extra_outputs or {}
        )

    def write(self, ctx, entity: str, *, step: str) -> dict:
        document = create_document(
            ctx, entity, self.body, step=step, again=lambda refused: self.again(ctx, entity, refused)
        )
        note_total_difference(ctx, document, self.hubspot_total, entity)
        return document

    def again(self, ctx, entity: str, refused: Refused) -> dict | None:
        """QuickBooks refused the write naming a gone or inactive reference: the body to write once more, or None."""
        from_memory = {"customer"} if self.customer_from_memory else set()
        if self.lines.match.from_memory:
            from_memory.add("item")
        resolved = {"customer", "item"}
        if self.movement is not None and self.money_on_document:
            from_memory |= self.movement.from_memory
            resolved |= self.movement.resolved
        memory = after_refusal(ctx, entity, refused, from_memory=from_memory, resolved=resolved)
        if memory is None:
            return None
        if not memory.resend:
            self.resolve(ctx, memory)
        return self.body

    def resolve(self, ctx, memory: Memory) -> None:
        """The company and the document's currency, then the customer, the lines' Items and the payment method,
        from memory as far as `memory` allows (all of them the first time; again, those a refusal may be about),
        into the body."""
        source = self.source
        questions = Questions(ctx.books)
        asked_currency = ask_currency(ctx, source, questions)
        lines = self.ask_lines(ctx, asked_currency, questions, memory)
        resolving_customer = self.needs("customer", memory)
        if resolving_customer:
            foresee_customer(ctx, self.party, asked_currency.possible, questions, memory)
        asked_movement = None
        if self.money_account and self.needs("payment_method", memory):
            asked_movement = ask_money_movement(ctx, source, questions, account_input=self.money_account, memory=memory)
        questions.send()  # one QuickBooks request, or none when everything is remembered and kept
        self.company, currency = answered_currency(ctx, asked_currency)  # checked before anything is written
        self.party = replace(self.party, currency=currency, home_currency=self.company.home_currency)
        asked_customer = ask_customer(ctx, self.party, questions, memory) if resolving_customer else None
        questions.send()  # foreseen above: answered without a request
        if lines is not None:
            self.check_lines(ctx, lines)
        if asked_customer is not None:
            self.customer = resolve_customer(ctx, asked_customer)
            self.customer_from_memory = asked_customer.remembered is not None
            self.body["CustomerRef"] = {"value": str(self.customer["Id"])}
        if lines is not None:
            self.lines = lines
            self.body["Line"] = lines.build(ctx)
        if asked_movement is not None:
            for key in self.movement.fields if self.movement and self.money_on_document else ():
                self.body.pop(key, None)
            self.movement = moved(ctx, asked_movement)
            if self.money_on_document:
                self.body |= self.movement.fields

    def ask_lines(
        self, ctx, asked_currency: CurrencyQuestions, questions: Questions, memory: Memory
    ) -> "PendingLines | None":
        """The lines to match (with the tax tables they may need), when their Items are to be resolved now."""
        if not self.needs("item", memory):
            return None
        lines = sales_lines(ctx, self.source, questions, memory)
        ask_tax_tables(asked_currency.company, questions)
        return lines

    def check_lines(self, ctx, lines: "PendingLines") -> None:
        """Reads only, once the questions were answered: nothing is written for a record that fails here."""
        preferences = self.company.preferences
        lines.match_answered(ctx)
        lines.service_dates = service_dates(ctx, self.source, preferences, lines.line_items)
        lines.taxes = plan_taxes(ctx, self.company, lines.line_items, lines.match.matched)
        lines.company = self.company
        if self.number is None:
            self.number = document_number(ctx, self.source, preferences)
        if self.check:
            self.check(lines)

    def needs(self, kind: str, memory: Memory) -> bool:
        """Resolve this kind of reference now: the first time, or again when a refusal may be about it."""
        first = {"customer": not self.customer, "item": self.lines is None, "payment_method": self.movement is None}
        return first[kind] or not memory.trusts(kind)


def load_sales_source(ctx) -> Source:
    """The enrolled record with its line items and whatever property its document number comes from."""
    return load_source(ctx, extra_properties=number_properties(ctx))


def prepare_sales_document(
    ctx, source: Source, *, check: Callable | None = None, money_account: str = "", money_on_document: bool = True
) -> SalesDocument:
    """The document's body, its customer found or created; `check(lines)` is the action's own last read-only check.

    `money_account`: the input naming the account the money moved through (receipts, paid invoices); the
    document's `movement` (that account, the payment method and the payment's reference) then goes on the
    document, unless `money_on_document` is off (a paid invoice puts it on the payment instead).
    """
    party = load_party(ctx, source, contact_properties=filter_properties(ctx.settings))
    if party.contact is not None:
        check_contact_eligible(ctx, party.contact)  # before QuickBooks is asked anything
    document = SalesDocument(
        body={},
        customer={},
        source=source,
        party=party,
        check=check,
        money_account=money_account,
        money_on_document=money_on_document,
    )
    document.resolve(ctx, TRUSTED)
    company, party = document.company, document.party
    note_amount_mismatch(ctx, source, document.lines)
    body = {
        "CustomerRef": document.body["CustomerRef"],
        "Line": document.body["Line"],
        "PrivateNote": tracking_note(ctx, source.label),
    }
    if party.email:
        body["BillEmail"] = {"Address": party.email}
    if document.number:
        body["DocNumber"] = document.number
    if source.date:
        body["TxnDate"] = source.date
    if party.currency:
        body["CurrencyRef"] = {"value": party.currency}
    calculation = global_tax_calculation(ctx, company)
    if calculation:
        body["GlobalTaxCalculation"] = calculation
    if document.movement is not None and money_on_document:
        body |= document.movement.fields
    document.body = body
    document.hubspot_total = hubspot_total_with_tax(document.lines.line_items, document.lines.taxes)
    return document


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
    """Lines to match to QuickBooks Items, with their taxes; missing products are created when the lines are built."""

    line_items: list[Record]
    asked: ItemQuestions | None = None  # the queries matching the line items, until answered
    match: ItemMatch = field(default_factory=ItemMatch)
    service_dates: dict[str, str] = field(default_factory=dict)  # once the company's preferences are known
    taxes: dict[str, LineTax] = field(default_factory=dict)
    company: CompanyProfile | None = None

    def match_answered(self, ctx) -> None:
        if self.asked is not None:
            self.match = match_items(ctx, self.asked)

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


def sales_lines(ctx, source: Source, questions: Questions, memory: Memory = TRUSTED) -> PendingLines:
    chosen_item = ctx.input("products", "line_items")
    if chosen_item != "line_items":
        return single_item_line(ctx, source, chosen_item)
    if not source.line_items:
        raise ActionError("NO_LINE_ITEMS", object_label=source.label)
    return PendingLines(source.line_items, asked=ask_items(ctx, source.line_items, questions, memory))


def single_item_line(ctx, source: Source, item_id: str) -> PendingLines:
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
    match = ItemMatch(matched={line.id: item}, line_items=[line])
    return PendingLines([line], match=match)


# -- service dates -----------------------------------------------------------------------------------------


def service_dates(ctx, source: Source, preferences: dict, line_items: list[Record]) -> dict[str, str]:
    """Line id → ServiceDate when they apply: billing start date, else the record's date, else today."""
    mode = ctx.settings.get("service_dates", "auto")
    if mode == "never" or (mode == "auto" and not revenue_recognition_on(preferences)):
        return {}
    fallback = source.date or date.today().isoformat()
    return {line.id: as_date(line.get("hs_recurring_billing_start_date")) or fallback for line in line_items}


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
