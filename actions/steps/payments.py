"""The rules of documents made from a HubSpot payment: which payments qualify, and how the money moved.

Every check here only reads, so a payment that fails one leaves nothing behind in QuickBooks.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from actions.errors import ActionError, QuickBooksFault, Refused
from actions.settings import setting_on
from actions.steps.lines import decimal_of, money
from actions.steps.memory import TRUSTED, Memory, after_refusal, recall
from actions.steps.query import Question, Questions, literal
from actions.steps.source import Record, Source, as_date
from actions.steps.taxes import is_taxed

PAYMENT = "COMMERCE_PAYMENT"
MAPPING = "payment_method"  # remembered per QuickBooks company by the method's name; only active ones
DUPLICATE_NAME = 6240
REFERENCE_LENGTH = 21  # QuickBooks' PaymentRefNum
METHOD_NAME_LENGTH = 31  # QuickBooks' PaymentMethod.Name
# hs_payment_method_type → the QuickBooks payment method's name (QuickBooks companies start with the first three).
METHOD_NAMES = {
    "cash": "Cash",
    "check": "Check",
    "card": "Credit Card",
    "ach": "ACH",
    "wire_transfer": "Wire transfer",
    "sepa": "SEPA Direct Debit",
    "bacs": "Bacs Direct Debit",
    "pads": "Pre-authorized debit",
    "other": "Other",
}


def amount_of(source: Source, name: str) -> Decimal:
    return money(decimal_of(source.record.get(name)))


# -- which payments qualify ------------------------------------------------------------------------------


def check_not_invoice_payment(ctx, source: Source) -> None:
    """A payment of a HubSpot invoice: the invoice sync already put it in QuickBooks (seed 004)."""
    if source.object_type != PAYMENT or source.record.get("hs_payment_source_app").upper() != "INVOICE":
        return
    if setting_on(ctx.settings.get("allow_invoice_payments")):
        ctx.journal.note(
            f"The {source.label} pays a HubSpot invoice; allow_invoice_payments is on, so it is recorded anyway."
        )
        return
    raise ActionError("PAYMENT_FROM_INVOICE", object_label=source.label)


def check_untaxed_lines(line_items: list[Record]) -> None:
    """A paid invoice holds non-taxable lines only (like HubSpot's own action): name every taxed one."""
    taxed = [line for line in line_items if is_taxed(line)]
    if taxed:
        raise ActionError("TAXABLE_LINES_NOT_ALLOWED", lines=", ".join(describe_tax(line) for line in taxed))


def describe_tax(line: Record) -> str:
    what = [
        f"{label} {line.get(name)}"
        for name, label in (
            ("hs_tax_rate_group_id", "tax rate group"),
            ("hs_tax_rate", "tax rate"),
            ("hs_tax_amount", "tax amount"),
        )
        if line.get(name)
    ]
    return f"'{line.get('name') or line.id}' ({', '.join(what)})"


def check_total_is_paid(source: Source, total: Decimal, *, taxed: bool = False) -> None:
    """The payment must cover the document; with tax, QuickBooks' rounding may land a cent away (noted later)."""
    paid = amount_of(source, "hs_initial_amount")
    tolerance = Decimal("0.01") if taxed else Decimal(0)
    if abs(total - paid) > tolerance:
        raise ActionError("PAYMENT_AMOUNT_MISMATCH", object_label=source.label, paid=paid, total=total)


def check_fully_refunded(source: Source) -> None:
    status = source.record.get("hs_latest_status") or "unknown"
    paid, refunded = amount_of(source, "hs_initial_amount"), amount_of(source, "hs_refunds_amount")
    if status.lower() != "refunded" or refunded != paid:
        raise ActionError("NOT_FULLY_REFUNDED", object_label=source.label, status=status, paid=paid, refunded=refunded)


def payment_fee(source: Source) -> Decimal:
    fee = amount_of(source, "hs_fees_amount")
    if fee <= 0:
        raise ActionError("NO_PAYMENT_FEE", object_label=source.label)
    return fee


def refund_date(source: Source) -> str:
    """A refund is dated when the payment last changed (it became refunded then), not when it was paid."""
    return as_date(source.record.get("hs_lastmodifieddate")) or source.date


# -- how the money moved ---------------------------------------------------------------------------------


@dataclass
class MoneyMovement:
    """Account, payment method and reference of a document made from a payment (or just the account)."""

    fields: dict
    account_input: str
    from_memory: set[str] = field(default_factory=set)  # {"payment_method"}: the method was remembered, unchecked
    resolved: set[str] = field(default_factory=set)  # {"payment_method"}: the method was found or created here

    def again(self, ctx, source: Source, entity: str, refused: Refused) -> "MoneyMovement | None":
        """QuickBooks refused the write naming a gone or inactive reference: the movement to write it once more
        with (its remembered payment method resolved again), or None when the refusal is about something else."""
        memory = after_refusal(ctx, entity, refused, from_memory=self.from_memory, resolved=self.resolved)
        if memory is None or memory.resend:
            return None if memory is None else self
        return money_movement(ctx, source, account_input=self.account_input, memory=memory)


@dataclass
class MovementQuestions:
    source: Source
    account_input: str
    method: "MethodQuestion | None" = None


def ask_money_movement(
    ctx, source: Source, questions: Questions, *, account_input: str, memory: Memory = TRUSTED
) -> MovementQuestions:
    """The payment method's lookup joins the document's other reads (none when it is remembered)."""
    asked = MovementQuestions(source, account_input)
    if source.object_type == PAYMENT and source.record.get("hs_payment_method_type"):
        asked.method = ask_payment_method(ctx, source.record.get("hs_payment_method_type"), questions, memory)
    return asked


def money_movement(ctx, source: Source, *, account_input: str, memory: Memory = TRUSTED) -> MoneyMovement:
    """Account, payment method and reference shared by sales receipts, refund receipts and payments."""
    questions = Questions(ctx.books)
    asked = ask_money_movement(ctx, source, questions, account_input=account_input, memory=memory)
    questions.send()
    return moved(ctx, asked)


def moved(ctx, asked: MovementQuestions) -> MoneyMovement:
    """The movement, once its questions were answered (a missing payment method is created here)."""
    source = asked.source
    movement = MoneyMovement(fields={}, account_input=asked.account_input)
    if ctx.input(asked.account_input):
        movement.fields["DepositToAccountRef"] = {"value": ctx.input(asked.account_input)}
    if source.object_type != PAYMENT:
        return movement
    method = payment_method(ctx, asked.method) if asked.method else None
    if method:
        movement.fields["PaymentMethodRef"] = {"value": str(method["Id"])}
        movement.resolved.add("payment_method")
        if asked.method.remembered:
            movement.from_memory.add("payment_method")
    reference = source.record.get("hs_reference_number")
    if reference:
        movement.fields["PaymentRefNum"] = reference[:REFERENCE_LENGTH]
        if len(reference) > REFERENCE_LENGTH:
            ctx.journal.note(
                f"The payment reference '{reference}' is longer than QuickBooks' {REFERENCE_LENGTH} "
                "characters; the reference field holds its start, the memo holds all of it."
            )
    return movement


@dataclass
class MethodQuestion:
    method_type: str
    name: str
    remembered: dict | None = None  # the method as remembered, written with unchecked
    named: Question | None = None


def ask_payment_method(ctx, method_type: str, questions: Questions, memory: Memory = TRUSTED) -> MethodQuestion:
    name = METHOD_NAMES.get(method_type.lower(), method_type.replace("_", " ").capitalize())[:METHOD_NAME_LENGTH]
    asked = MethodQuestion(method_type, name)
    recalled = recall(ctx, MAPPING, name, ())
    if recalled and memory.trusts("payment_method"):
        asked.remembered = {"Id": recalled[0], "Name": name, "Active": True}
        return asked
    if recalled:
        ctx.mappings.forget(MAPPING, name)
    asked.named = questions.ask([methods_named_query(name)])
    return asked


def payment_method(ctx, asked: MethodQuestion) -> dict | None:
    """The QuickBooks payment method named for HubSpot's method type: remembered, found by name, or created once."""
    if asked.remembered:
        return asked.remembered
    name = asked.name
    found = earliest(asked.named.answers[0])
    if found is None:
        try:
            found = ctx.books.create(
                "PaymentMethod",
                {"Name": name, "Type": method_kind(asked.method_type)},
                request_id=ctx.request_id(f"payment_method:{name}"),
            )
        except QuickBooksFault as fault:
            if fault.code != DUPLICATE_NAME:
                raise
            found = earliest(ctx.books.query(methods_named_query(name)))  # another execution created it just now
        else:
            ctx.journal.wrote(f"payment_method:{name}", "PaymentMethod", found)
    if found and not found.get("Active", True):
        ctx.journal.note(
            f"The QuickBooks payment method '{found.get('Name')}' is inactive; the document is "
            "recorded without a payment method. Make it active in QuickBooks to have it set."
        )
        return None
    if found:
        ctx.mappings.remember(MAPPING, name, str(found["Id"]))  # active: later documents are written with it
    return found


def methods_named_query(name: str) -> str:
    return f"SELECT * FROM PaymentMethod WHERE Name = {literal(name)} AND Active IN (true, false)"


def earliest(found: list[dict]) -> dict | None:
    """The active method first, then the oldest."""
    return min(found, key=lambda m: (not m.get("Active", True), int(m["Id"]))) if found else None


def method_kind(method_type: str) -> str:
    return "CREDIT_CARD" if method_type.lower() == "card" else "NON_CREDIT_CARD"
